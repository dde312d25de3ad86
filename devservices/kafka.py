"""Apache Kafka 4.x, single node in KRaft mode, from the jars Maven resolves for ``pom.xml``.

The jars are the ones the release tarball ships, resolved from Maven Central into ``~/.m2``.
The classpath Maven computes is cached per pom checksum, so only the first start pays for Maven.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

from devservices.base import (
    Service,
    ServiceError,
    free_port,
    log,
    make_workdir,
    port_open,
    require_binary,
    spawn,
    wait_ready,
)

NAME = "kafka"
POM = Path(__file__).with_name("pom.xml")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rideshare-devservices"

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
"""

# The heap and collector settings of Kafka's own start script (kafka-server-start.sh): a fixed
# 1 GB heap, G1 aiming at 20 ms pauses, marking from 35 % occupancy: a smaller, growing heap
# sat above G1's default marking threshold and paused the broker every few seconds
# (docs/performance.md). The young generation is held at 64 MB (-Xmn) because, left to G1, it
# grows and its collections' pauses with it, where held they stay short for the same CPU
# (docs/performance.md).
JVM_OPTIONS = (
    "-Xms1g", "-Xmx1g", "-Xmn64m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)  # fmt: skip
# The broker's command-line tools, by the name of their shell wrapper in the release tarball.
TOOLS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-storage": "kafka.tools.StorageTool",
}


def classpath() -> str:
    """Return the broker's Java classpath, resolving the jars with Maven on first use."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    cached = CACHE_DIR / f"kafka-{digest}.classpath"
    if cached.exists():
        text = cached.read_text().strip()
        if text and all(Path(jar).exists() for jar in text.split(os.pathsep)):
            return text
    mvn = require_binary(NAME, "mvn")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log(f"resolving Kafka jars with Maven from {POM} (cached in ~/.m2)")
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath",
         f"-Dmdep.outputFile={cached}"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0 or not cached.exists():
        raise ServiceError(
            NAME, f"Maven could not resolve the Kafka jars:\n{result.stdout[-3000:]}"
        )
    return cached.read_text().strip()


def _java() -> str:
    return require_binary(NAME, "java")


def server_properties(*, port: int, controller_port: int, data_dir: Path) -> str:
    """Return a single-node KRaft configuration: broker and controller in one process, with
    threads for a laptop's two cores, which it shares with everything it serves (1 network and
    2 request threads; the defaults, 3 and 8, are a server's and cost more CPU under the
    scoring benchmark's load: docs/performance.md)."""
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=1
num.io.threads=2
"""


def run_tool(tool: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run one of the broker's own command-line tools (``kafka-topics``...); return the result."""
    if tool not in TOOLS:
        raise ValueError(f"unknown Kafka tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    workdir = CACHE_DIR
    workdir.mkdir(parents=True, exist_ok=True)
    log4j = workdir / "log4j2-tools.properties"
    log4j.write_text(LOG4J2)
    return subprocess.run(
        [_java(), "-Xmx256m", f"-Dlog4j2.configurationFile={log4j}",
         "-cp", classpath(), TOOLS[tool], *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )  # fmt: skip


def _answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    host, port = bootstrap.rsplit(":", 1)
    if not port_open(int(port), host):
        return False  # spare the client's connection-refused log lines while the JVM starts

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="devservices-ready",
        request_timeout_ms=3000,
        bootstrap_timeout_ms=3000,
    )
    try:
        admin.list_topics()
        admin.describe_cluster()
        return True
    finally:
        admin.close()


def start(
    *, port: int | None = None, workdir: Path | None = None, timeout: float = 90.0
) -> Service:
    """Format storage in a temporary directory, start the broker, wait until it answers.

    Given the ``workdir`` of a broker stopped with ``keep_data=True``, start it again on the same
    port and storage instead (its topics, records and committed offsets intact)."""
    t0 = time.monotonic()
    cp = classpath()
    java = _java()
    restart = workdir is not None and (workdir / "server.properties").exists()
    workdir = workdir if restart else make_workdir(NAME)
    config = workdir / "server.properties"
    log4j_file = workdir / "log4j2.properties"
    log4j = f"-Dlog4j2.configurationFile={log4j_file}"
    if restart:
        listeners = dict(line.split("=", 1) for line in config.read_text().splitlines() if line)
        port = int(listeners["advertised.listeners"].rsplit(":", 1)[1])
    else:
        port = port or free_port()
        controller_port = free_port()
        config.write_text(
            server_properties(port=port, controller_port=controller_port, data_dir=workdir / "data")
        )
        log4j_file.write_text(LOG4J2)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        formatted = subprocess.run(
            [java, log4j, "-cp", cp, TOOLS["kafka-storage"], "format",
             # '=' form: an id may start with '-', which a separate argument would not survive
             f"--cluster-id={cluster_id}", "-c", str(config)],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if formatted.returncode != 0:
            output = (formatted.stdout + formatted.stderr)[-2000:]
            raise ServiceError(NAME, f"formatting KRaft storage failed:\n{output}")
    bootstrap = f"127.0.0.1:{port}"
    service = spawn(
        NAME,
        [java, *JVM_OPTIONS, log4j, "-cp", cp, "kafka.Kafka", str(config)],
        workdir=workdir,
        started_at=t0,
        url=bootstrap,
    )  # fmt: skip
    service.env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "EVENT_BUS": "kafka"}
    return wait_ready(service, lambda: _answers(bootstrap), timeout=timeout)
