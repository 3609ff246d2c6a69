"""The settings tree, loaded once from LAMINA_* environment variables and an optional TOML file.

Only this module reads the process environment. docs/configuration.md lists every setting.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEV_ACCOUNT = "000000000000"
DEV_ACCESS_KEY = "test"
DEV_SECRET_KEY = "test"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAMINA_", frozen=True, extra="ignore",
                                      toml_file=os.environ.get("LAMINA_CONFIG_FILE", "lamina.toml"))

    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(9000, description="port of the AWS-compatible API")
    data_dir: Path = Field(Path(".lamina"), description="store, code blobs and keys live here")
    region: str = Field("us-east-1", description="region used when a request names none")
    allow_public_dev_keys: bool = Field(False, description="listen beyond loopback although the dev keys exist")
    dev_keys: bool = Field(True, description="create the dev account 000000000000 with keys test/test")
    log_level: str = Field("info", description="server log level")
    keep_alive_s: float = Field(300.0, description="idle seconds before a warm environment is evicted")
    account_concurrency: int = Field(1000, description="invocations an account may run at once")
    prewarm_runtimes: list[str] = Field(default_factory=lambda: ["python3.12"],
                                        description="runtimes whose fast-start zygote starts with the server")
    max_environments: int = Field(64, description="environments this node runs at once")
    sandbox: str = Field("auto", description="isolation backend: auto (best available), zygote (bwrap + fast "
                                             "Python starts, required), bwrap (no zygote), plain")
    runtime_map: dict[str, str] = Field(default_factory=dict,
                                        description="runtime id -> interpreter install prefix override")
    python_fallback: str = Field("python3.11", description="runtime used when a python3.x is not installed")
    pyenv_root: Path = Field(Path("/root/.pyenv/versions"), description="where CPython installs are searched")
    node_binary: Path = Field(Path("/usr/bin/node"), description="Node.js used for nodejs* runtimes")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClientSettings:
    """What the CLI needs to reach a server: the same variables the AWS tools read."""

    endpoint: str
    region: str
    access_key: str
    secret_key: str


def client_settings() -> ClientSettings:
    env = os.environ
    return ClientSettings(
        endpoint=env.get("LAMINA_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:9000",
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        access_key=env.get("AWS_ACCESS_KEY_ID", DEV_ACCESS_KEY),
        secret_key=env.get("AWS_SECRET_ACCESS_KEY", DEV_SECRET_KEY))
