"""The AWS-compatible REST API: the only place that speaks AWS's wire format."""
