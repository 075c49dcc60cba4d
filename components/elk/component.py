"""The logging stack: Elasticsearch, a one-shot setup job, Logstash and Kibana."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components import provider_values
from components.common import (
    MEMORY_SWAP_UNLIMITED,
    ROLE_JOB,
    Runtime,
    config_file,
    data_volume,
    healthcheck,
    labels,
    log_driver,
    pulled_image,
    ready_gate,
    secret_file,
)
from components.config import ImagesConfig, LoggingConfig
from components.elk import render
from components.gate import Condition, DockerConnection, ReadyGate
from microstack_common import contract

ES_HOME = "/usr/share/elasticsearch"
ES_DATA_DIR = f"{ES_HOME}/data"
ES_CONFIG_FILE = f"{ES_HOME}/config/elasticsearch.yml"
LOGSTASH_PIPELINE_FILE = "/usr/share/logstash/pipeline/logstash.conf"
KIBANA_CONFIG_FILE = "/usr/share/kibana/config/kibana.yml"
SETUP_DIR = "/usr/share/microstack/elk-setup"
SETUP_SCRIPT_FILE = f"{SETUP_DIR}/setup.sh"
SETUP_POLICY_FILE = f"{SETUP_DIR}/ilm-policy.json"
SETUP_TEMPLATE_FILE = f"{SETUP_DIR}/index-template.json"

# The Elastic images' own user (uid 1000, group 0), said explicitly: Elasticsearch
# refuses to run as root, and its data volume's files belong to uid 1000, so a
# rebuilt image with another USER must not change who runs it.
ELASTIC_IMAGE_USER = "1000:0"

# CPU limits (cores). Elasticsearch indexes and Logstash parses every line; the
# setup job only runs curl. Memory limits come from the config.
ES_CPUS = 1.0
LOGSTASH_CPUS = 1.0
KIBANA_CPUS = 0.5
SETUP_CPUS = 0.25
SETUP_MEMORY_MB = 64

# The JVMs (and Kibana's Node.js) get half of their container's memory as
# heap: the rest is for metaspace, thread stacks, direct buffers and the
# page cache, and a heap the size of the limit gets the container OOM-killed.
HEAP_SHARE = 0.5

# The Elastic stack starts in tens of seconds, Kibana last; creation waits for
# each container's health check, so these allow a slow first start.
JVM_START_PERIOD_SECONDS = 120
KIBANA_START_PERIOD_SECONDS = 180
WAIT_TIMEOUT_SECONDS = 300
SETUP_WAIT_SECONDS = 180


@dataclass(frozen=True)
class ElkArgs:
    config: LoggingConfig
    images: ImagesConfig
    prefix: str
    """Prefix of Docker object names, e.g. `microstack-dev`."""
    stack: str
    network: docker.Network
    """The internal logging network."""
    elastic_password: pulumi.Output[str]
    kibana_system_password: pulumi.Output[str]
    docker: DockerConnection
    """How the readiness gates reach the Docker engine."""


class Elk(pulumi.ComponentResource):
    """Elasticsearch, Logstash and Kibana on the internal logging network, and the job that sets them up.

    Creation order is the start order: Elasticsearch (healthy), then the setup
    job (run to its end: the kibana_system password, the lifecycle policy and
    the index template exist before anything is indexed), then Logstash and
    Kibana.

    Docker publishes no port of a container that is only on internal
    networks, so Logstash (GELF, from the Docker daemon on the host) and Kibana
    (for the user) also join a small `logging-edge` bridge, through which they
    publish on 127.0.0.1 only. That bridge does not masquerade, so it gives
    them no way out to other networks either.

    These containers log to rotated json-file, never to gelf: Logstash would
    otherwise receive its own complaints about an unreachable Elasticsearch,
    one more each time it logged one.
    """

    elasticsearch: docker.Container
    setup: docker.Container
    logstash: docker.Container
    kibana: docker.Container
    edge_network: docker.Network
    volume: docker.Volume
    kibana_url: str
    gelf_address: str

    def __init__(self, name: str, args: ElkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:logging:Elk", name, None, opts)
        cfg = args.config
        self._args = args
        self._child = pulumi.ResourceOptions(parent=self)
        self._logs = log_driver(cfg.model_copy(update={"enabled": False}))

        self.edge_network = docker.Network(
            f"{name}-edge",
            name=f"{args.prefix}-logging-edge",
            driver="bridge",
            options={"com.docker.network.bridge.enable_ip_masquerade": "false"},
            # See components/network.py: Docker refuses two networks of one name.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.volume = data_volume(
            self, f"{name}-elasticsearch", f"{args.prefix}-elasticsearch-data", cfg.retain_on_delete
        )
        self.kibana_url = f"http://127.0.0.1:{cfg.kibana_port}"
        self.gelf_address = f"udp://127.0.0.1:{cfg.gelf_port}"
        self.elasticsearch = self._create_elasticsearch(name)
        self.elasticsearch_ready = self._gate(f"{name}-elasticsearch", self.elasticsearch)
        self.setup = self._create_setup_job(name)
        # The job's exit code is checked here: the provider only records it
        # (must_run=false with attach), so a failed setup would pass as done.
        self.setup_done = self._gate(f"{name}-setup", self.setup, "exited-zero")
        self.logstash = self._create_logstash(name)
        self.logstash_ready = self._gate(f"{name}-logstash", self.logstash)
        self.kibana = self._create_kibana(name)
        self.kibana_ready = self._gate(f"{name}-kibana", self.kibana)
        self.register_outputs(
            {
                "elasticsearch": self.elasticsearch.name,
                "logstash": self.logstash.name,
                "kibana": self.kibana.name,
                "kibanaUrl": self.kibana_url,
                "gelfAddress": self.gelf_address,
            }
        )

    def _runtime(self, role: str, memory_mb: int, cpus: float, test: str, start_period_seconds: int) -> Runtime:
        return Runtime(
            memory_mb=memory_mb,
            cpus=cpus,
            healthcheck=healthcheck(["CMD-SHELL", test], start_period_seconds=start_period_seconds),
            logs=self._logs,
            labels=labels(self._args.stack, role),
        )

    def _gate(self, name: str, container: docker.Container, condition: Condition = "healthy") -> ReadyGate:
        return ready_gate(
            self, name, container, self._args.docker, condition=condition, timeout_seconds=WAIT_TIMEOUT_SECONDS
        )

    def _logging_network(self, alias: str) -> docker.ContainerNetworksAdvancedArgs:
        return docker.ContainerNetworksAdvancedArgs(name=self._args.network.name, aliases=[alias])

    def _edge_network(self) -> docker.ContainerNetworksAdvancedArgs:
        return docker.ContainerNetworksAdvancedArgs(name=self.edge_network.name)

    def _create_elasticsearch(self, name: str) -> docker.Container:
        args, cfg = self._args, self._args.config
        image = pulled_image(self, f"{name}-elasticsearch", args.images.elasticsearch)
        heap = cfg.elasticsearch_heap_mb
        runtime = self._runtime(
            "elasticsearch",
            cfg.elasticsearch_memory_mb,
            ES_CPUS,
            render.elasticsearch_health_command(contract.ELASTIC_PASSWORD_FILE),
            JVM_START_PERIOD_SECONDS,
        )
        return docker.Container(
            f"{name}-elasticsearch",
            name=f"{args.prefix}-elasticsearch",
            image=image.image_id,
            user=ELASTIC_IMAGE_USER,
            command=render.elasticsearch_command(contract.ELASTIC_PASSWORD_FILE),
            envs=[f"ES_JAVA_OPTS=-Xms{heap}m -Xmx{heap}m"],
            uploads=[
                config_file(ES_CONFIG_FILE, render.render_elasticsearch_yml(f"{args.prefix}-logs")),
                secret_file(contract.ELASTIC_PASSWORD_FILE, args.elastic_password),
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=ES_DATA_DIR)],
            networks_advanced=[self._logging_network(contract.Alias.ELASTICSEARCH)],
            **runtime.container_args(),
            opts=runtime.options(parent=self),
        )

    def _create_setup_job(self, name: str) -> docker.Container:
        """The one-shot job: the Elasticsearch image (bash and curl) running setup.sh once.

        `attach` makes creation wait until the script has finished; its gate
        (condition exited-zero) fails the `up` when it failed, after running
        it once more, and every later `up` runs it again until it succeeds.
        What depends on the job waits for the gate, so it starts after the
        policy and template exist. The container stays after it exits, for
        `docker logs`; a change of its inputs (retention, a password) replaces
        it and so runs it again.
        """
        args = self._args
        environment = render.setup_environment(
            elasticsearch_url=render.ELASTICSEARCH_URL,
            elastic_password_file=contract.ELASTIC_PASSWORD_FILE,
            kibana_system_password_file=contract.KIBANA_SYSTEM_PASSWORD_FILE,
            ilm_policy_file=SETUP_POLICY_FILE,
            index_template_file=SETUP_TEMPLATE_FILE,
            wait_seconds=SETUP_WAIT_SECONDS,
        )
        return docker.Container(
            f"{name}-setup",
            name=f"{args.prefix}-elk-setup",
            image=self.elasticsearch.image,
            user=ELASTIC_IMAGE_USER,
            command=["/bin/bash", SETUP_SCRIPT_FILE],
            envs=[f"{key}={value}" for key, value in sorted(environment.items())],
            uploads=[
                config_file(SETUP_SCRIPT_FILE, render.setup_script()),
                config_file(SETUP_POLICY_FILE, render.render_ilm_policy(args.config.retention_days)),
                config_file(SETUP_TEMPLATE_FILE, render.render_index_template()),
                secret_file(contract.ELASTIC_PASSWORD_FILE, args.elastic_password),
                secret_file(contract.KIBANA_SYSTEM_PASSWORD_FILE, args.kibana_system_password),
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network.name)],
            memory=SETUP_MEMORY_MB,
            memory_swap=MEMORY_SWAP_UNLIMITED,
            cpus=provider_values.cpus(SETUP_CPUS),
            restart="no",
            stop_timeout=contract.STOP_TIMEOUT_SECONDS,
            must_run=False,
            wait=False,
            attach=True,
            logs=True,
            log_driver=self._logs.driver,
            log_opts=self._logs.options,
            labels=[
                docker.ContainerLabelArgs(label=key, value=value)
                for key, value in sorted(labels(args.stack, ROLE_JOB).items())
            ],
            # A fixed name: see Runtime.options.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.elasticsearch_ready], delete_before_replace=True),
        )

    def _create_logstash(self, name: str) -> docker.Container:
        args, cfg = self._args, self._args.config
        image = pulled_image(self, f"{name}-logstash", args.images.logstash)
        heap = int(cfg.logstash_memory_mb * HEAP_SHARE)
        runtime = self._runtime(
            "logstash",
            cfg.logstash_memory_mb,
            LOGSTASH_CPUS,
            render.logstash_health_command(),
            JVM_START_PERIOD_SECONDS,
        )
        return docker.Container(
            f"{name}-logstash",
            name=f"{args.prefix}-logstash",
            image=image.image_id,
            user=ELASTIC_IMAGE_USER,
            envs=[f"LS_JAVA_OPTS=-Xms{heap}m -Xmx{heap}m"],
            uploads=[secret_file(LOGSTASH_PIPELINE_FILE, args.elastic_password.apply(render.render_logstash_pipeline))],
            # Docker maps the published port through the edge network; the
            # internal logging network has no gateway to map it through.
            networks_advanced=[self._edge_network(), self._logging_network(contract.Alias.LOGSTASH)],
            ports=[
                docker.ContainerPortArgs(
                    internal=contract.GELF_PORT, external=cfg.gelf_port, ip="127.0.0.1", protocol="udp"
                )
            ],
            **runtime.container_args(),
            opts=runtime.options(parent=self, depends_on=[self.setup_done]),
        )

    def _create_kibana(self, name: str) -> docker.Container:
        args, cfg = self._args, self._args.config
        image = pulled_image(self, f"{name}-kibana", args.images.kibana)
        public_url = self.kibana_url
        kibana_yml = args.kibana_system_password.apply(lambda password: render.render_kibana_yml(password, public_url))
        runtime = self._runtime(
            "kibana", cfg.kibana_memory_mb, KIBANA_CPUS, render.kibana_health_command(), KIBANA_START_PERIOD_SECONDS
        )
        return docker.Container(
            f"{name}-kibana",
            name=f"{args.prefix}-kibana",
            image=image.image_id,
            user=ELASTIC_IMAGE_USER,
            envs=[f"NODE_OPTIONS=--max-old-space-size={int(cfg.kibana_memory_mb * HEAP_SHARE)}"],
            uploads=[secret_file(KIBANA_CONFIG_FILE, kibana_yml)],
            networks_advanced=[self._edge_network(), self._logging_network(contract.Alias.KIBANA)],
            ports=[
                docker.ContainerPortArgs(
                    internal=contract.KIBANA_PORT, external=cfg.kibana_port, ip="127.0.0.1", protocol="tcp"
                )
            ],
            **runtime.container_args(),
            opts=runtime.options(parent=self, depends_on=[self.setup_done]),
        )
