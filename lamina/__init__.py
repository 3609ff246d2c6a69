"""Lamina: self-hosted serverless functions that speak the AWS Lambda API."""

__version__ = "0.1.0"
