"""Kafka's jars, fetched once with Maven from Maven Central into the user's cache."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ingest.devservices._process import ServiceError, ServiceUnavailable

DEFAULT_KAFKA_VERSION = "4.1.1"
# Kafka's Maven pom leaves out the slf4j binding its distribution ships; without one the
# broker's own errors (slf4j 1.7 in Kafka 4.1) would vanish into the NOP logger.
_LOG4J_VERSION = "2.24.3"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mesh-ingest</groupId>
  <artifactId>kafka-dev-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_version() -> str:
    return os.environ.get("INGEST_DEV_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mesh-ingest"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise fetches between processes (parallel test runs on one machine)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_jars(version: str | None = None, *, progress: TextIO | None = None) -> Path:
    """The cached libs directory for `version`, fetched with Maven the first time.

    Maven writes into a temporary directory that is renamed into place only when it
    succeeded, so the existence of `libs/` means a complete download. Progress goes to
    `progress`, by default whatever sys.stderr is at the time of the call (not of import:
    pytest swaps it while capturing).
    """
    version = version or kafka_version()
    home = cache_root() / f"kafka-{version}"
    libs = home / "libs"
    if libs.is_dir():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceUnavailable(f"Maven (mvn) is needed once to fetch Kafka {version} jars")
    home.mkdir(parents=True, exist_ok=True)
    with _locked(home / ".lock"):
        if libs.is_dir():  # fetched by another process while we waited for the lock
            return libs
        progress = progress or sys.stderr
        for interrupted in home.glob(".fetch-*"):  # we hold the lock: no one else is fetching
            shutil.rmtree(interrupted, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=home))
        try:
            (work / "pom.xml").write_text(_POM.format(version=version, log4j=_LOG4J_VERSION))
            print(
                f"mesh-ingest: fetching Kafka {version} jars from Maven Central into {libs} "
                "(first time only)",
                file=progress,
                flush=True,
            )
            started = time.monotonic()
            _maven_copy(mvn, work, progress)
            if not (work / "libs" / f"kafka_2.13-{version}.jar").is_file():
                raise ServiceError(f"Maven finished but kafka_2.13-{version}.jar is missing")
            _keep_matching_slf4j_binding(work / "libs")
            os.rename(work / "libs", libs)
            count = len(list(libs.glob("*.jar")))
            print(
                f"mesh-ingest: {count} jars ready in {time.monotonic() - started:.1f} s",
                file=progress,
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return libs


def _maven_copy(mvn: str, work: Path, progress: TextIO) -> None:
    argv = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(work / "pom.xml"),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={work / 'libs'}",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=work,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        tail = [*tail[-39:], line.rstrip()]
        # Only the jar downloads: a readable progress list without Maven's pom chatter.
        found = re.search(r"Downloaded from \S+ (\S+/([^/]+\.jar)) \((.*)\)", line)
        if found:
            print(f"  {found.group(2)} ({found.group(3)})", file=progress, flush=True)
        elif "[ERROR]" in line:
            print(f"  {line.rstrip()}", file=progress, flush=True)
    if proc.wait() != 0:
        raise ServiceError("Maven could not fetch the Kafka jars:\n" + "\n".join(tail))


def _keep_matching_slf4j_binding(libs: Path) -> None:
    """Both bindings are fetched (the pom cannot know which slf4j Kafka brings); they share
    class names, so the one for the other slf4j major version must go."""
    slf4j_2 = any(libs.glob("slf4j-api-2.*.jar"))
    unwanted = "log4j-slf4j-impl-*.jar" if slf4j_2 else "log4j-slf4j2-impl-*.jar"
    for jar in libs.glob(unwanted):
        jar.unlink()
