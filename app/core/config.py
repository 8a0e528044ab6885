"""Service settings: every knob comes from ``GENREC_*`` environment variables.

With nothing configured the service runs embedded (SQLite file, in-process
cache, ``./store``, CPU), so ``genrec serve`` works on a laptop; docker-compose
switches to Postgres and Redis by setting two URLs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from app.core.allowed_hosts import check_host_pattern
from training.data.log_reader import DEFAULT_EVENT_WEIGHTS
from training.overfetch import ANN_CANDIDATES, ANN_MAX_CANDIDATES
from training.passwords import masked_url

#: The shortest attribution window: event times are stamped to the millisecond and a
#: person's click takes longer than a second, so a shorter window would attribute nothing.
SHORTEST_WINDOW_MINUTES = 1 / 60


def at_least_a_second(minutes: float) -> float:
    """Refuses a positive attribution window too short to attribute anything (5e-324
    minutes went through, and silently attributed no event)."""
    if minutes < SHORTEST_WINDOW_MINUTES:
        raise ValueError(
            f"must be at least one second (1/60 = {SHORTEST_WINDOW_MINUTES:.4f} minutes); "
            f"{minutes:g} minutes would attribute no event"
        )
    return minutes


Device = Literal["cpu", "cuda", "auto"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: Interaction types and training weights when ``GENREC_EVENT_TYPES`` is not set (the
#: training side's default, so ``--data db`` reads a log the same way).
DEFAULT_EVENT_TYPES = DEFAULT_EVENT_WEIGHTS


#: Smallest mSPRT mixing standard deviation (setting or experiment): a CTR difference of
#: one in a million is below anything a test on clicks could find, and a far smaller tau
#: made tau**2 underflow to 0, which the interval's formula divides by
#: (``app.experiments.stats.msprt_half_width``).
MIN_MIXING_SD = 1e-6


class Settings(BaseSettings):
    """Typed settings; ``Settings()`` reads the environment and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="GENREC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Every number here is a count, a size or a time: "inf" passed "> 0" and ended in
        # the first wait on it (GENREC_JOB_POLL_INTERVAL_S=inf: an idle worker's
        # OverflowError), so infinite values are refused with the rest.
        allow_inf_nan=False,
        # A refused value is left out of the error's text: a traceback from a bad
        # GENREC_API_KEYS (or admin token, or database URL with its password) would
        # otherwise print the secret (``uvicorn --factory`` shows pydantic's own report;
        # the CLI's one line per setting reads ``errors()``, which still has the input).
        hide_input_in_errors=True,
    )

    store_dir: Path = Field(Path("./store"), description="model store root directory")
    database_url: str = Field(
        "sqlite:///./var/genrec.db", description="interaction log database (SQLAlchemy URL)"
    )
    redis_url: str | None = Field(None, description="Redis URL; none = in-process cache")
    cache_namespace: str = Field("genrec", description="key prefix in Redis")
    cache_ttl_s: int = Field(3600, gt=0, description="lifetime of a cached user state")
    cache_max_entries: int = Field(100_000, gt=0, description="in-process cache size")
    cache_local_max_entries: int = Field(
        10_000,
        ge=0,
        description="with Redis: users whose states each process also keeps in memory in "
        "front of it (0: none; about D x 4 bytes per user and model version)",
    )
    device: Device = Field("cpu", description="where item tables live and scoring runs")
    default_model: str = Field(
        "mult-vae",
        description="model used when a request names none; unset = mult-vae if it has a "
        "production version, else the only production model, else the newest promotion",
    )
    data_dir: Path | None = Field(None, description="named data sets (MovieLens files)")
    cache_dir: Path | None = Field(None, description="download cache for data sets")
    dataset_base_url: str | None = Field(
        None,
        description="where named data sets are downloaded from (a mirror of GroupLens' "
        "MovieLens archives, same file names); none = GroupLens",
    )
    keep_freed_memory: bool = Field(
        True,
        description="training keeps freed memory in the process heap (glibc mallopt; "
        "training/allocator.py): large per-step tensors are not page-faulted in again",
    )
    # SecretStr: a Settings repr (logs, tracebacks) shows ********** instead of the token.
    admin_token: SecretStr | None = Field(
        None, description="bearer token for /admin; none = disabled"
    )
    # NoDecode: a comma-separated list (``key1,key2``), not JSON; see ``_split_api_keys``.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description="keys a /v1 request must send as 'Authorization: Bearer <key>' (comma-"
        "separated: several at once while clients move to a new key); none = /v1 is open",
    )
    # NoDecode: a comma-separated list (``api.example.com,*.example.com``), not JSON.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        ("*",),
        description="host names a request's Host header may name (comma-separated; "
        "'*.example.com' = any subdomain; '*' = any host): any other is a 400 "
        "invalid_host, health checks included",
    )
    admin_max_failures: int = Field(
        10,
        ge=0,
        description="wrong admin tokens one client address may send per "
        "admin_failure_window_s before its admin and login requests get 429 (0: no limit)",
    )
    admin_failure_window_s: float = Field(
        60.0, gt=0, description="the window admin_max_failures counts in (seconds)"
    )
    reload_interval_s: float = Field(2.0, gt=0, description="how often aliases are polled")
    auto_migrate: bool = Field(True, description="run `alembic upgrade head` at startup")
    max_k: int = Field(1000, gt=0, description="largest k a request may ask for")
    max_batch: int = Field(1000, gt=0, description="most interactions in one POST")
    max_id_length: int = Field(256, gt=0, le=256, description="longest user/item id")
    max_body_bytes: int = Field(
        64 * 2**20,
        gt=0,
        description="largest request body of any route (checked before it is read; the "
        "dashboard's forms take at most 1.2 MB): a 413 "
        "beyond; the default fits the "
        "largest legal request (history, exclude and include of 10,000 ids, a filter and 8 "
        "boosts at their limits, ASCII: about 46 MB)",
    )
    body_timeout_s: float = Field(
        60.0,
        ge=0,
        le=86400.0,
        description="longest pause between two reads of a request body (seconds, as nginx's "
        "client_body_timeout: per read, not for the whole body): a 408 and the connection "
        "closed beyond; 0: no timeout (leave it to a proxy in front); at most a day",
    )
    log_level: LogLevel = Field("INFO", description="root log level")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="json: one JSON object per log line (with request_id); text: plain "
        "lines, control characters in messages escaped",
    )
    access_log: bool = Field(True, description="one log line per HTTP request (with request_id)")
    batch_wait_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="longest a ranking request waits for others to batch with "
        "(not at all when the previous batch was a single request)",
    )
    batch_max: int = Field(64, gt=0, le=4096, description="most ranking requests in one batch")
    ann: Literal["auto", "on", "off"] = Field(
        "auto",
        description="approximate retrieval (FAISS index) for inner-product models: on, off, "
        "or auto = on when the catalog has at least GENREC_ANN_AUTO_ITEMS items and is served "
        "on the CPU (on a GPU the exact product is faster), unless the index's build-time "
        "calibration found it needs more than 1/8 of its lists for 95% recall",
    )
    ann_auto_items: int = Field(
        100_000, gt=0, description="catalog size from which GENREC_ANN=auto uses the index"
    )
    ann_candidates: int = Field(
        ANN_CANDIDATES,
        gt=0,
        le=100_000,
        description="candidates the index returns per request beyond k and the masked items "
        "(all re-scored exactly)",
    )
    ann_max_candidates: int = Field(
        ANN_MAX_CANDIDATES,
        gt=0,
        description="a request that would need more candidates (many masked items) is scored "
        "exactly instead; an include list or a group of equally boosted items up to this size "
        "is scored whole",
    )
    ann_nprobe: int | None = Field(
        None, gt=0, description="IVF lists searched per query (default: the manifest's nprobe)"
    )
    ann_similar_nprobe: int | None = Field(
        None,
        gt=0,
        description="the similar-items index's IVF lists per query (default: the manifest's "
        "retrieval.similar.nprobe)",
    )
    interaction_commit_wait_ms: float = Field(
        2.0,
        ge=0,
        le=100,
        description="longest an interaction write waits for others to share its transaction "
        "(group commit; not at all when the previous group was a single request)",
    )
    torch_threads: int = Field(
        1,
        ge=0,
        description="torch intra-op threads for scoring on CPU (0 = torch's default, one per "
        "core); requests already run in parallel, and idle OpenMP threads spin",
    )
    faiss_threads: int = Field(
        0,
        ge=0,
        description="OpenMP threads of one FAISS index search (0 = OpenMP's default, one per "
        "core); set in each model's scoring thread, since OpenMP keeps the count per thread",
    )
    db_retry_s: float = Field(
        1.0, gt=0, description="after a database failure, answer without it for this long"
    )
    db_connect_timeout_s: float = Field(
        3.0, gt=0, description="Postgres connect timeout (a black-holed database costs this)"
    )
    dashboard_session_hours: float = Field(
        8.0,
        gt=0,
        description="how long a /dashboard login lasts (its signed session cookie's lifetime)",
    )
    bench_endpoints: bool = Field(
        False, description="mount /v1/_bench/constant (the benchmark's HTTP-stack baseline)"
    )
    retrain_every: float | None = Field(
        None, gt=0, description="periodic retraining period: seconds or 30m/6h/1d; none = off"
    )
    tune_interval_hours: float | None = Field(
        None,
        gt=0,
        description="periodic tuning (`genrec tune` on the log, gated promotion) every this many "
        "hours; none = off",
    )
    # The bounds a tune job takes (training.tuning.search, MIN/MAX_BUDGET_SECONDS): one
    # outside them was refused by every worker's first schedule, a traceback that stopped it.
    tune_budget_minutes: float = Field(
        10.0, ge=0.5, le=10080.0, description="search budget of a scheduled tune job (<= a week)"
    )
    # At most a day: a longer lease only delays taking over a dead worker's job, and the
    # lease end is computed in SQL (``app.core.db_time``), where SQLite's date arithmetic
    # gives NULL past its range (a lease that never expires) and Postgres an error.
    job_lease_s: float = Field(
        60.0, gt=0, le=86400.0, description="retrain job lease a worker renews (<= a day)"
    )
    job_max_hours: float = Field(
        24.0,
        gt=0,
        le=8760.0,
        description="an attempt of a job running longer is stopped (its lease no longer "
        "renewed): failed on its last attempt, else taken over; a tune job adds its budget",
    )
    job_poll_interval_s: float = Field(
        2.0, gt=0, description="how often an idle worker looks for a job"
    )

    impressions: bool = Field(
        True,
        description="record an impression per recommendation response (on|off); analytics, "
        "written in the background, dropped (and counted) when the queue is full",
    )
    impression_queue_size: int = Field(
        10_000, gt=0, description="impressions waiting for the background writer, at most"
    )
    impression_batch_max: int = Field(
        500, gt=0, le=2000, description="most impressions written by one INSERT"
    )
    impression_flush_s: float = Field(
        0.5, gt=0, description="longest a queued impression waits for its batch to fill"
    )
    impression_retention_days: float | None = Field(
        90.0, gt=0, description="impressions older than this are deleted; none = kept forever"
    )
    impression_cleanup_interval_s: float = Field(
        3600.0, gt=0, description="how often the retention cleanup runs"
    )
    attribution_window_minutes: float = Field(
        30.0,
        ge=0,
        description="an event without recommendation_id is attributed to the latest impression "
        "that showed the item to the user this long before it (0 = only explicit ids)",
    )
    event_types: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_TYPES),
        description="interaction types and their training weights (JSON object); a type "
        "with a negative weight is negative feedback, never a positive; 0 = not trained on",
    )

    experiment_refresh_s: float = Field(
        2.0,
        gt=0,
        description="how often each server re-reads the running A/B experiment (a start or "
        "stop reaches every replica within this time; no database read per request)",
    )
    experiment_click_types: list[str] = Field(
        default_factory=lambda: ["click"],
        description="event types an experiment's results count as clicks (JSON list)",
    )
    experiment_conversion_types: list[str] = Field(
        default_factory=lambda: ["purchase"],
        description="event types an experiment's results count as conversions (JSON list)",
    )
    experiment_mixing_sd: float = Field(
        0.02,
        ge=MIN_MIXING_SD,
        le=1,
        description="default mSPRT mixing standard deviation over the CTR difference "
        "(about the smallest difference worth detecting)",
    )

    @property
    def default_model_explicit(self) -> bool:
        """Whether ``GENREC_DEFAULT_MODEL`` was set (strict) rather than left to the store."""
        return "default_model" in self.model_fields_set

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else check_redis_url(value)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: object) -> object:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(
        cls, value: tuple[SecretStr, ...], info: ValidationInfo
    ) -> tuple[SecretStr, ...]:
        for number, key in enumerate(value, 1):
            check_api_key(key.get_secret_value(), number, len(value))
        # An API key equal to the admin token would let every client holding it into
        # /admin: they are separate secrets (the admin token is accepted on /v1, never
        # the other way round). ``admin_token`` is declared first, so it is in ``data``.
        token = info.data.get("admin_token")
        admin = token.get_secret_value().strip() if isinstance(token, SecretStr) else ""
        if admin and any(key.get_secret_value() == admin for key in value):
            raise ValueError(
                "a key equals GENREC_ADMIN_TOKEN; an API key must not grant admin access "
                "(the admin token is accepted on /v1 anyway)"
            )
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_allowed_hosts(cls, value: object) -> object:
        return parse_allowed_hosts(value) if isinstance(value, str) else value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(pattern.lower() for pattern in value)  # a tuple given in code too
        if not value:
            raise ValueError(
                "no host is allowed, so every request would be refused: name the hosts "
                "clients reach this server by, or '*' for any host (the default)"
            )
        for pattern in value:
            check_host_pattern(pattern)
        return value

    @field_validator("attribution_window_minutes")
    @classmethod
    def _window_off_or_a_second(cls, value: float) -> float:
        return value if value == 0 else at_least_a_second(value)

    @field_validator("retrain_every", mode="before")
    @classmethod
    def _parse_retrain_every(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("tune_interval_hours", mode="before")
    @classmethod
    def _parse_tune_interval(cls, value: object) -> object:
        off = isinstance(value, str) and value.strip().lower() in ("", "off", "none", "0")
        return None if off else value

    @field_validator("impression_retention_days", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        off = isinstance(value, str) and value.strip().lower() in ("", "off", "none", "0")
        return None if off else value

    @field_validator("impressions", mode="before")
    @classmethod
    def _parse_on_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("on", "off"):
            return value.strip().lower() == "on"
        return value

    @field_validator("event_types")
    @classmethod
    def _check_event_types(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not name or len(name) > 32 or not name.isascii() or name.strip() != name:
                raise ValueError(f"event type {name!r} must be 1-32 ASCII characters")
            if weight != weight or weight in (float("inf"), float("-inf")):
                raise ValueError(f"event type {name!r} needs a finite weight, got {weight}")
        return value

    @model_validator(mode="after")
    def _check_retention_covers_the_window(self) -> Settings:
        """An event is attributed to a list at most ``attribution_window_minutes`` after it;
        a retention shorter than that deleted lists whose clicks were still to come, and
        those events were logged unattributed (``unknown``)."""
        days, window = self.impression_retention_days, self.attribution_window_minutes
        if days is not None and days * 24 * 60 < window:
            raise ValueError(
                f"GENREC_IMPRESSION_RETENTION_DAYS ({days:g} days) is shorter than "
                f"GENREC_ATTRIBUTION_WINDOW_MINUTES ({window:g} minutes): impressions would be "
                "deleted while events can still be attributed to them"
            )
        return self

    @model_validator(mode="after")
    def _check_experiment_types(self) -> Settings:
        """Only types of ``event_types`` can be logged (any other is a 422
        ``unknown_event_type``): counting another left an experiment's clicks or
        conversions at 0 in every variant, with nothing to say why. Checked where set:
        the defaults (``click``, ``purchase``) stay harmless on a vocabulary without them."""
        for name in ("experiment_click_types", "experiment_conversion_types"):
            unknown = [t for t in getattr(self, name) if t not in self.event_types]
            if name in self.model_fields_set and unknown:
                raise ValueError(
                    f"GENREC_{name.upper()}: {', '.join(map(repr, unknown))} is not an event "
                    "type of this "
                    f"server (GENREC_EVENT_TYPES: {', '.join(sorted(self.event_types))}), so "
                    "no event of it can be logged or counted"
                )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


#: Shortest API key accepted: a key is a secret a client holds, not a password a person
#: types; 16 characters of the advised ``openssl rand -hex 32`` are still 64 bits.
MIN_API_KEY_LENGTH = 16
#: Characters of JSON or shell quoting, never of a generated key (``openssl rand -hex 32``).
_NOT_IN_A_KEY = frozenset("\"'[]")


def parse_api_keys(text: str) -> tuple[str, ...]:
    """``"key1, key2,"`` -> ``("key1", "key2")``: blanks around a comma and empty entries
    (a trailing comma left after removing a rotated-out key) are not keys."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """``" API.example.com, *.example.com,"`` -> ``("api.example.com", "*.example.com")``:
    host names are compared in lower case; blanks around a comma and empty entries are
    no hosts."""
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


def check_api_key(key: str, number: int, count: int) -> None:
    """Refuse a key too short to be a secret, or one no client could send in a header.

    The message says which key by position, never the key itself: it ends up in a
    terminal, a log, a CI transcript."""
    which = f"key {number} of {count}" if count > 1 else "the key"
    if len(key) < MIN_API_KEY_LENGTH:
        raise ValueError(
            f"{which} has {len(key)} characters; an API key needs at least "
            f"{MIN_API_KEY_LENGTH} to be a secret (e.g. openssl rand -hex 32)"
        )
    if not all("!" <= char <= "~" for char in key):
        raise ValueError(
            f"{which} holds white space or a character outside printable ASCII; a key "
            "must be sendable as 'Authorization: Bearer <key>' (e.g. openssl rand -hex 32)"
        )
    # The other list settings are JSON (GENREC_EXPERIMENT_CLICK_TYPES='["click"]'): the same
    # habit here gave keys such as '["k1"' and '"k2"]' that no client sends, so every request
    # was a 401 and nothing said why.
    if any(char in _NOT_IN_A_KEY for char in key):
        raise ValueError(
            f"{which} holds a quote or a bracket; GENREC_API_KEYS is bare keys separated by "
            "commas (key1,key2), not a JSON list nor quoted strings"
        )


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """Seconds in ``"90"``, ``"90s"``, ``"30m"``, ``"6h"``, ``"1d"``; blank/off/none/0 = None."""
    raw = text.strip().lower()
    if raw in ("", "off", "none", "0"):
        return None
    unit = _DURATION_UNITS.get(raw[-1])
    number = raw[:-1] if unit is not None else raw
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(
            f"duration {text!r} is not a number of seconds or a number with s/m/h/d (e.g. 6h)"
        ) from None
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive (or 'off')")
    return seconds


#: The databases the interaction log, jobs and catalog are written and tested for.
SUPPORTED_DATABASES = ("postgresql", "sqlite")


def normalise_database_url(url: str) -> str:
    """Point plain ``postgresql://`` at psycopg 3, the driver the project ships.

    SQLAlchemy's bare ``postgresql`` dialect means psycopg2, which is not a
    dependency; users copy URLs from ``psql`` docs, so accept them.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        # an error line must not print a password
        raise ValueError(f"database_url {masked_url(url)!r} is not a valid SQLAlchemy URL") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in SUPPORTED_DATABASES:
        # Any other dialect failed at the first connection (MySQLdb not installed, a
        # traceback); the log's SQL, migrations and tests cover these two only.
        raise ValueError(
            f"database_url: genrec runs on {' or '.join(SUPPORTED_DATABASES)}, "
            f"not {parsed.get_backend_name()!r}"
        )
    return parsed.render_as_string(hide_password=False)


def check_redis_url(url: str) -> str:
    """Refuse what redis-py could not connect to: it raised at the first connection, a
    ~100-frame traceback at server start, where a bad database URL is one line."""
    from redis.connection import parse_url

    try:
        parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    except ValueError as exc:
        raise ValueError(  # masked: an error line must not print a password
            f"redis_url {masked_url(url)!r} is not a Redis URL: {exc} (e.g. redis://host:6379/0)"
        ) from None
    return url


#: Settings the training package reads from the environment itself (it never imports
#: ``app``): field -> variable. ``export_training_settings`` puts them there.
TRAINING_ENVIRONMENT = {
    "data_dir": "GENREC_DATA_DIR",
    "cache_dir": "GENREC_CACHE_DIR",
    "dataset_base_url": "GENREC_DATASET_BASE_URL",
    "keep_freed_memory": "GENREC_KEEP_FREED_MEMORY",
}


def export_training_settings(settings: Settings) -> None:
    """Put the settings ``training`` reads from ``os.environ`` there, so a value set in
    ``.env`` (which only ``Settings`` reads) reaches it too: the download mirror, the
    data and cache folders of every loader and protocol, the allocator switch. Only
    settings that were set (environment or ``.env``) are written; a boolean as 1 or 0."""
    import os

    for field, variable in TRAINING_ENVIRONMENT.items():
        if field not in settings.model_fields_set:
            continue
        value = getattr(settings, field)
        if value is None:
            os.environ.pop(variable, None)
        elif isinstance(value, bool):
            os.environ[variable] = "1" if value else "0"
        else:
            os.environ[variable] = str(value)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once (tests build ``Settings(...)`` directly)."""
    return Settings()
