"""The suite-wide secret canary: no secret a test creates may end up in a log, a dump or a file.

Every secret the tests make is handed to :func:`remember` (sign-up and member passwords, session
and API tokens, host passwords, private keys and passphrases, git provider, OAuth and CI/CD
tokens, deployment secret variables, the session's Fernet key), mostly from a few central places:
the API helpers, an httpx event hook on the tests' API clients, the sshd users and the fakes'
token factories.

While the session runs, every Python log record (the server, the in-process workers, uvicorn's
access log) goes to ``<session root>/canary/logs/python.log`` at DEBUG, the output of the CLI
runs the tests start goes to ``canary/cli/`` (:func:`save_output`, :func:`output_path`), and each
test database is dumped to ``canary/db/`` before it is dropped (:func:`dump_path`).

At the end of the session (``pytest_sessionfinish`` in ``tests/conftest.py``) :func:`finish`
greps all of that, the session's data directory and any watched directory (:func:`watch`) for
every remembered secret in the encodings it would travel in (raw, URL-encoded, JSON-escaped,
base64 at any offset, so ``user:secret`` in a Basic header too, and hex, as bytea dumps it). A
hit fails the session. A file that holds a secret by design is excused by its exact path with
the reason (:func:`exclude`); nothing is excused by pattern.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# A shorter value could match by chance; every secret the tests make on purpose is longer.
MIN_LENGTH = 8
# Fewer distinct characters than this is filler, not a secret (see remember()).
MIN_DISTINCT_CHARACTERS = 3
MASK = "***"
# Record fields and form fields whose value is a secret, with the kind the report names.
SECRET_FIELDS: Mapping[str, str] = {
    "password": "password",
    "current_password": "password",
    "new_password": "password",
    "private_key": "SSH private key",
    "private_key_passphrase": "key passphrase",
    "access_token": "token",
    "refresh_token": "token",
    "client_secret": "OAuth client secret",
    "api_token": "CI/CD token",
    "token": "token",
}
# An OpenSSH public key as Shipyard stores and shows it: a private key's body lines that hold only
# its public half (the OpenSSH format carries it in clear) can match inside it.
PUBLIC_KEY = re.compile(r"(?:ssh|ecdsa|sk)-[\w@.-]+ AAAA[0-9A-Za-z+/]+=*")
# How much of a leaking line the report shows, and how many lines it shows at most.
EXCERPT = 240
MAX_FINDINGS = 200


@dataclass(frozen=True)
class Needle:
    """One string to search for: ``secret`` (of ``kind``) as it looks in ``encoding``."""

    text: str
    kind: str
    secret: str
    encoding: str


@dataclass(frozen=True)
class Finding:
    kind: str
    encoding: str
    path: Path
    line_number: int
    excerpt: str  # the line around the hit, every secret in it replaced by ***

    def describe(self) -> str:
        return (
            f"{self.kind} ({self.encoding}) in {self.path}:{self.line_number}\n    {self.excerpt}"
        )


@dataclass
class Report:
    secrets: int
    needles: int
    files: int
    size: int
    seconds: float
    root: Path | None
    findings: list[Finding] = field(default_factory=list)
    excused: list[str] = field(default_factory=list)
    cost: str = ""
    errors: list[str] = field(default_factory=list)
    more: int = 0
    kept: list[Path] = field(default_factory=list)  # each session's canary folder (xdist: many)

    @property
    def failed(self) -> bool:
        return bool(self.findings or self.errors)

    def summary(self) -> str:
        searched = (
            f"{self.secrets} secrets ({self.needles} encodings) searched in {self.files} files "
            f"({self.size / 1e6:.1f} MB) in {self.seconds:.1f} s"
        )
        if not self.failed:
            return f"secret canary: {searched}: none found"
        leaked = len({(f.kind, f.path) for f in self.findings})
        return f"secret canary FAILED: {searched}: {leaked} leaks, {len(self.errors)} errors"

    def lines(self) -> list[str]:
        out = [self.summary()]
        if self.cost:
            out.append(self.cost)
        out += [finding.describe() for finding in self.findings]
        if self.more:
            out.append(f"... and {self.more} more lines")
        out += [f"error: {error}" for error in self.errors]
        out += [f"excused: {note}" for note in self.excused]
        if self.failed:
            for root in self.kept or ([self.root] if self.root is not None else []):
                out.append(f"the logs, CLI output and database dumps are kept in {root}")
        return out


# -- the encodings a secret travels in ------------------------------------------------------------


def _base64_runs(value: bytes) -> list[str]:
    """The base64 text of ``value`` that is the same wherever it sits in a longer encoded string.

    At each of the three offsets, only the characters made of ``value``'s bits alone are kept, so
    ``base64("user:" + secret)`` (HTTP Basic) contains one of them whatever ``user`` is.
    """
    runs = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode().rstrip("=")
        start = -(-offset * 8 // 6)
        end = (offset + len(value)) * 8 // 6
        runs.append(encoded[start:end])
    return runs


def encodings(secret: str) -> list[tuple[str, str]]:
    """``(encoding, text)`` pairs to search for; multi-line secrets are searched line by line."""
    lines = [line.strip() for line in secret.strip().splitlines()]
    if len(lines) > 1:
        # A PEM or OpenSSH block: each body line is found wherever the key was written, raw or
        # JSON-escaped. Marker lines and the first body line (format and key type, the same for
        # every key of that type) say nothing about this key.
        body = [line for line in lines if line and not line.startswith("-----")]
        return [("line of the key", line) for line in body[1:] if len(line) >= 16]
    raw = secret.encode()
    found = [
        ("raw", secret),
        ("URL-encoded", urllib.parse.quote(secret, safe="")),
        ("form-encoded", urllib.parse.quote_plus(secret, safe="")),
        ("JSON-escaped", json.dumps(secret)[1:-1]),
        ("hex", raw.hex()),
    ]
    found += [("base64", run) for run in _base64_runs(raw)]
    unique: dict[str, str] = {}
    for name, text in found:
        if len(text) >= MIN_LENGTH and text not in unique:
            unique[text] = name
    return [(name, text) for text, name in unique.items()]


def needles(secrets: Mapping[str, str]) -> list[Needle]:
    """Every (secret, encoding) to search for; ``secrets`` maps each value to its kind."""
    found: dict[str, Needle] = {}
    for secret, kind in secrets.items():
        for encoding, text in encodings(secret):
            if "\n" not in text and "\0" not in text:
                found.setdefault(text, Needle(text, kind, secret, encoding))
    return list(found.values())


# -- the search -----------------------------------------------------------------------------------


def _only_in_public_keys(needle: Needle, line: str) -> bool:
    """Whether every occurrence of a private key's line lies inside a public key on ``line``."""
    if needle.encoding != "line of the key":
        return False
    spans = [match.span() for match in PUBLIC_KEY.finditer(line)]
    start = line.find(needle.text)
    while start != -1:
        end = start + len(needle.text)
        if not any(low <= start and end <= high for low, high in spans):
            return False
        start = line.find(needle.text, start + 1)
    return bool(spans)


def _excerpt(line: str, texts: Sequence[str]) -> str:
    first = min(line.find(text) for text in texts)
    for text in sorted(texts, key=len, reverse=True):
        line = line.replace(text, MASK)
    start = max(0, min(first, len(line)) - EXCERPT // 2)
    cut = line[start : start + EXCERPT]
    return ("…" if start else "") + cut + ("…" if start + EXCERPT < len(line) else "")


def _files(roots: Iterable[Path]) -> tuple[int, int]:
    count = size = 0
    for root in roots:
        paths = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if not path.is_symlink():
                count += 1
                size += path.stat().st_size
    return count, size


def scan(
    secrets: Mapping[str, str],
    roots: Sequence[Path],
    excluded: Mapping[Path, str] | None = None,
) -> Report:
    """Search every file under ``roots`` for every secret; hits in ``excluded`` files are excused."""
    started = time.monotonic()
    excluded = {path.resolve(): why for path, why in (excluded or {}).items()}
    roots = [root for root in roots if root.exists()]
    all_needles = needles(secrets)
    files, size = _files(roots)
    report = Report(len(secrets), len(all_needles), files, size, 0.0, None)
    if all_needles and roots:
        with tempfile.NamedTemporaryFile("w", suffix=".patterns", encoding="utf-8") as patterns:
            patterns.write("".join(needle.text + "\n" for needle in all_needles))
            patterns.flush()
            _grep(patterns.name, all_needles, roots, excluded, report)
    report.seconds = time.monotonic() - started
    return report


def _grep(
    patterns: str,
    all_needles: list[Needle],
    roots: Sequence[Path],
    excluded: Mapping[Path, str],
    report: Report,
) -> None:
    # GNU grep matches thousands of fixed strings at once (Aho-Corasick); -Z ends the file name
    # with a NUL, so any file name parses; LC_ALL=C compares bytes.
    command = ["grep", "-r", "-n", "-F", "-Z", "--binary-files=text", "-f", patterns, "--"]
    result = subprocess.run(
        [*command, *map(str, roots)],
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
        check=False,
    )
    if result.returncode not in (0, 1):
        report.errors.append(f"grep failed ({result.returncode}): {result.stderr.decode()[:500]}")
    excused: dict[Path, int] = {}
    for raw in result.stdout.split(b"\n"):
        if not raw:
            continue
        name, _, rest = raw.partition(b"\0")
        number, _, content = rest.partition(b":")
        path = Path(os.fsdecode(name))
        if path.resolve() in excluded:
            excused[path] = excused.get(path, 0) + 1
            continue
        if len(report.findings) >= MAX_FINDINGS:
            report.more += 1
            continue
        line = content.decode("utf-8", errors="replace")
        hits = [needle for needle in all_needles if needle.text in line]
        if not hits:  # the bytes matched but not their decoded text: say so, never drop it
            hits = [n for n in all_needles if n.text.encode() in content]
        hits = [needle for needle in hits if not _only_in_public_keys(needle, line)]
        if not hits:
            continue
        for needle in {(n.kind, n.encoding): n for n in hits}.values():
            excerpt = _excerpt(line, [n.text for n in hits])
            report.findings.append(
                Finding(needle.kind, needle.encoding, path, int(number or 0), excerpt)
            )
    for path, count in excused.items():
        report.excused.append(f"{path} ({count} lines): {excluded[path.resolve()]}")


# -- what the tests hand in -----------------------------------------------------------------------


class _Canary:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: dict[str, str] = {}
        self.root: Path | None = None
        self.roots: list[Path] = []
        self.excluded: dict[Path, str] = {}
        self.handler: logging.Handler | None = None
        self.previous_level = logging.WARNING
        self.outputs = 0
        self.dumps = 0
        self.dump_seconds = 0.0


_canary = _Canary()


def remember(secret: str, kind: str = "secret") -> str:
    """Remember ``secret`` for the end-of-session search; returns it, for use inline."""
    # Filler such as "x" * 100 is not a secret anyone could leak: other tests send the same run
    # of one character as a search string or an oversized name, which would read as a leak.
    if (
        isinstance(secret, str)
        and len(secret.strip()) >= MIN_LENGTH
        and len(set(secret)) >= MIN_DISTINCT_CHARACTERS
    ):
        with _canary.lock:
            _canary.secrets.setdefault(secret, kind)
    return secret


def remember_fields(payload: Any, *, kind: str | None = None) -> None:
    """Remember the secrets in a JSON body or form: its secret fields and secret variables."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            if isinstance(value, str) and key in SECRET_FIELDS:
                remember(value, kind or SECRET_FIELDS[key])
            else:
                remember_fields(value, kind=kind)
        # A deployment's environment variable: {"name": ..., "value": ..., "secret": true}.
        if payload.get("secret") is True and isinstance(payload.get("value"), str):
            remember(payload["value"], "deployment secret variable")
    elif isinstance(payload, list):
        for item in payload:
            remember_fields(item, kind=kind)


def _body(content: bytes, content_type: str) -> Any:
    if content_type.startswith("application/json"):
        try:
            return json.loads(content)
        except ValueError:
            return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(urllib.parse.parse_qsl(content.decode(errors="replace")))
    return None


async def _on_request(request: httpx.Request) -> None:
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed upload: nothing the tests typed in
        return
    remember_fields(_body(content, request.headers.get("content-type", "")))


async def _on_response(response: httpx.Response) -> None:
    # Only JSON answers are read here: an event stream would block until it ends.
    if response.headers.get("content-type", "").startswith("application/json"):
        await response.aread()
        remember_fields(_body(response.content, "application/json"), kind="token")


def httpx_hooks() -> dict[str, list[Any]]:
    """``event_hooks`` for an API client: remembers the secrets it sends and the tokens it gets."""
    return {"request": [_on_request], "response": [_on_response]}


def watch(directory: Path) -> Path:
    """Search ``directory`` too at the end of the session (a per-test data or cache directory)."""
    with _canary.lock:
        if _canary.root is not None and directory not in _canary.roots:
            _canary.roots.append(directory)
    return directory


def exclude(path: Path, why: str) -> None:
    """Excuse exactly the file ``path``, which holds a secret by design; ``why`` is reported."""
    with _canary.lock:
        _canary.excluded[path] = why


def active() -> bool:
    return _canary.root is not None


def _folder(name: str) -> Path | None:
    if _canary.root is None:
        return None
    folder = _canary.root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def output_path(label: str) -> Path:
    """A new file for a subprocess's output (``os.devnull`` when no canary runs)."""
    folder = _folder("cli")
    if folder is None:
        return Path(os.devnull)
    with _canary.lock:
        _canary.outputs += 1
        number = _canary.outputs
    return folder / f"{number:05d}-{label}.txt"


def save_output(label: str, *outputs: str | bytes | None) -> None:
    """Keep what a CLI run printed (stdout, stderr) for the end-of-session search."""
    path = output_path(label)
    if path == Path(os.devnull):
        return
    with path.open("wb") as file:
        for output in outputs:
            if output:
                file.write(output.encode() if isinstance(output, str) else output)
                file.write(b"\n")


def dump_path(database: str) -> Path | None:
    """Where to dump ``database`` before it is dropped (None when no canary runs)."""
    folder = _folder("db")
    return None if folder is None else folder / f"{database}.tsv"


def note_dump(seconds: float) -> None:
    """Count a database dump and its time (the cost the canary adds to the suite)."""
    with _canary.lock:
        _canary.dumps += 1
        _canary.dump_seconds += seconds


class _CountingHandler(logging.FileHandler):
    """A file handler that counts its records and the time it spends writing them."""

    records = 0
    seconds = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        started = time.perf_counter()
        super().emit(record)
        self.records += 1
        self.seconds += time.perf_counter() - started


class _NotFromFakes(logging.Filter):
    """Leaves out uvicorn's lines from the provider fakes' servers (threads named ``fake-*``).

    They are the logs of the provider Shipyard talks to, not Shipyard's, as sshd's logs are the
    target host's; Shipyard's own servers in the tests log through the same uvicorn loggers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from_fake = (record.threadName or "").startswith("fake-")
        return not (from_fake and record.name.startswith("uvicorn"))


@contextlib.contextmanager
def logging_levels_kept() -> Iterator[None]:
    """Put back the loggers' levels a test changed (the CLI run in-process configures logging).

    Otherwise every test after the first CLI test would log at INFO with the libraries at WARNING,
    and the canary would read only what happens to run first at DEBUG.
    """
    loggers = logging.Logger.manager.loggerDict
    saved = {
        name: (logger.level, logger.propagate, logger.disabled)
        for name, logger in [("", logging.getLogger()), *loggers.items()]
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        for name, (level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name or None)
            if logger.level != level:
                logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def start(root: Path, *, data_dir: Path) -> None:
    """Begin collecting: every log record at DEBUG into ``root``; ``data_dir`` is searched too."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    handler = _CountingHandler(root / "logs" / "python.log", encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")
    )
    handler.addFilter(_NotFromFakes())
    root_logger = logging.getLogger()
    with _canary.lock:
        _canary.root = root
        # sshd's logs (session root/sshd) and the git servers' folders are not searched: they
        # belong to the test hosts and providers, which are given the secrets on purpose.
        _canary.roots = [root, data_dir]
        _canary.handler = handler
        _canary.previous_level = root_logger.level
    root_logger.addHandler(handler)
    root_logger.setLevel(logging.DEBUG)
    exclude(data_dir / "secret.keys", "the key file holds the Fernet keys by design")


def handoff() -> dict[str, Any] | None:
    """Stop collecting and return what there is to search, as plain data; None if never started.

    Under pytest-xdist each worker hands this to the controller (``workeroutput``), which searches
    every worker's collection at once with :func:`search`.
    """
    with _canary.lock:
        root, handler = _canary.root, _canary.handler
        roots, excluded = list(_canary.roots), dict(_canary.excluded)
        secrets = dict(_canary.secrets)
        _canary.root = _canary.handler = None
        dumps, dump_seconds, outputs = _canary.dumps, _canary.dump_seconds, _canary.outputs
    if root is None:
        return None
    records, log_seconds = 0, 0.0
    if handler is not None:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(_canary.previous_level)
        handler.close()
        if isinstance(handler, _CountingHandler):
            records, log_seconds = handler.records, handler.seconds
    return {
        "root": str(root),
        "roots": [str(path) for path in roots],
        "excluded": {str(path): why for path, why in excluded.items()},
        "secrets": secrets,
        "records": records,
        "log_seconds": log_seconds,
        "outputs": outputs,
        "dumps": dumps,
        "dump_seconds": dump_seconds,
    }


def search(collected: Sequence[Mapping[str, Any]], errors: Sequence[str] = ()) -> Report:
    """Search what one or more sessions (xdist workers) collected, each for every secret of all.

    A secret one worker made is searched in every worker's files too. ``errors`` (e.g. a worker
    that sent nothing) fail the report as a hit does.
    """
    secrets: dict[str, str] = {}
    roots: list[Path] = []
    excluded: dict[Path, str] = {}
    for part in collected:
        for secret, kind in part["secrets"].items():
            secrets.setdefault(secret, kind)
        roots += [Path(path) for path in part["roots"]]
        excluded.update({Path(path): why for path, why in part["excluded"].items()})
    report = scan(secrets, roots, excluded)
    report.errors += list(errors)
    kept = [Path(part["root"]) for part in collected]
    report.root = kept[0] if len(kept) == 1 else (kept[0].parent if kept else None)
    report.kept = kept
    records = sum(part["records"] for part in collected)
    log_seconds = sum(part["log_seconds"] for part in collected)
    dumps = sum(part["dumps"] for part in collected)
    dump_seconds = sum(part["dump_seconds"] for part in collected)
    outputs = sum(part["outputs"] for part in collected)
    sessions = f" from {len(collected)} workers" if len(collected) > 1 else ""
    report.cost = (
        f"collected {records} log records ({log_seconds:.1f} s), {outputs} CLI outputs, "
        f"{dumps} database dumps ({dump_seconds:.1f} s){sessions}"
    )
    if not report.failed:
        # Nothing to look at: the dumps and DEBUG logs would only fill /tmp run after run.
        for root in kept:
            shutil.rmtree(root, ignore_errors=True)
    return report


def finish() -> Report | None:
    """Stop collecting and search everything; None if the canary never started."""
    collected = handoff()
    return None if collected is None else search([collected])
