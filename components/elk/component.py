"""The logging stack: Elasticsearch, a one-shot setup job, Logstash and Kibana."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components.common import ROLE_JOB, labels, log_driver, pulled_image
from components.config import ImagesConfig, LoggingConfig
from components.elk import render
from components.platform import Deployment, NetworkSpec, Platform
from components.platform.workload import (
    Attach,
    ConfigFile,
    DataVolume,
    Health,
    Image,
    Kind,
    Mount,
    Publish,
    SecretFile,
    Workload,
)
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
SETUP_DATA_VIEW_FILE = f"{SETUP_DIR}/data-view.json"
SETUP_SAVED_SEARCH_FILE = f"{SETUP_DIR}/saved-search.json"

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
    platform: Platform


class Elk(pulumi.ComponentResource):
    """Elasticsearch, Logstash and Kibana on the internal logging network, and the job that sets them up.

    Creation order is the start order: Elasticsearch (healthy), then the setup
    job (run to its end: the kibana_system password, the lifecycle policy and
    the index template exist before anything is indexed), then Logstash and
    Kibana, then the Kibana setup job (the data view and the saved search).

    The Kibana steps are a second job rather than a wait at the end of the
    first: Kibana logs in as kibana_system, whose password the first job sets,
    so Kibana is created only after that job's gate passed (on Swarm too,
    where the job is a container on the manager and Kibana a service created
    after the same gate). The first job waiting for Kibana would wait for a
    container that does not exist yet; Logstash, behind the same gate, would
    also start only once Kibana is up. The second job is created after
    Kibana's own gate (healthy, or the service converged), and polls Kibana's
    /api/status for a bounded time on top, for a Kibana that restarts.

    Docker publishes no port of a container that is only on internal
    networks, so Logstash (GELF, from the Docker daemon on the host) and Kibana
    (for the user) also join a small `logging-edge` bridge, through which they
    publish on 127.0.0.1 only. That bridge does not masquerade, so it gives
    them no way out to other networks either.

    These containers log to rotated json-file, never to gelf: Logstash would
    otherwise receive its own complaints about an unreachable Elasticsearch,
    one more each time it logged one.
    """

    elasticsearch: Deployment
    setup: Deployment
    logstash: Deployment
    kibana: Deployment
    kibana_setup: Deployment
    edge_network: docker.Network
    kibana_url: str
    gelf_address: str

    def __init__(self, name: str, args: ElkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:logging:Elk", name, None, opts)
        cfg = args.config
        self._args = args
        self._logs = log_driver(cfg.model_copy(update={"enabled": False}))

        self.edge_network = args.platform.network(
            self, NetworkSpec(f"{name}-edge", f"{args.prefix}-logging-edge", masquerade=False)
        )
        self.kibana_url = f"http://127.0.0.1:{cfg.kibana_port}"
        self.gelf_address = f"udp://127.0.0.1:{cfg.gelf_port}"
        self.elasticsearch = self._elasticsearch(name)
        self.setup = self._setup_job(name)
        self.logstash = self._logstash(name)
        self.kibana = self._kibana(name)
        self.kibana_setup = self._kibana_setup_job(name)
        self.register_outputs(
            {
                "elasticsearch": self.elasticsearch.name,
                "logstash": self.logstash.name,
                "kibana": self.kibana.name,
                "kibanaUrl": self.kibana_url,
                "gelfAddress": self.gelf_address,
            }
        )

    def _workload(
        self, name: str, role: str, image: Image, memory_mb: int, cpus: float, test: str, start_period: int, **more: Any
    ) -> Workload:
        return Workload(
            name=name,
            docker_name=f"{self._args.prefix}-{role}",
            role=role,
            kind=more.pop("kind", Kind.STATEFUL),
            image=image,
            memory_mb=memory_mb,
            cpus=cpus,
            health=Health(["CMD-SHELL", test], start_period_seconds=start_period),
            logs=self._logs,
            labels=labels(self._args.stack, role),
            user=ELASTIC_IMAGE_USER,
            ready_timeout_seconds=WAIT_TIMEOUT_SECONDS,
            **more,
        )

    def _image(self, name: str, reference: str) -> Image:
        image = pulled_image(self, name, reference)
        return Image(local_id=image.image_id, pinned=image.repo_digest)

    def _logging_network(self, alias: str | None = None) -> Attach:
        return Attach(self._args.network, (alias,) if alias else ())

    def _elasticsearch(self, name: str) -> Deployment:
        args, cfg = self._args, self._args.config
        heap = cfg.elasticsearch_heap_mb
        self._es_image = self._image(f"{name}-elasticsearch", args.images.elasticsearch)
        return args.platform.run(
            self,
            self._workload(
                f"{name}-elasticsearch",
                "elasticsearch",
                self._es_image,
                cfg.elasticsearch_memory_mb,
                ES_CPUS,
                render.elasticsearch_health_command(contract.ELASTIC_PASSWORD_FILE),
                JVM_START_PERIOD_SECONDS,
                command=render.elasticsearch_command(contract.ELASTIC_PASSWORD_FILE),
                env={"ES_JAVA_OPTS": f"-Xms{heap}m -Xmx{heap}m"},
                configs=(
                    ConfigFile(
                        "elasticsearch-yml", ES_CONFIG_FILE, render.render_elasticsearch_yml(f"{args.prefix}-logs")
                    ),
                ),
                secrets=(SecretFile("elastic-password", contract.ELASTIC_PASSWORD_FILE, args.elastic_password),),
                mounts=(
                    Mount(
                        DataVolume(
                            f"{name}-elasticsearch-data", f"{args.prefix}-elasticsearch-data", cfg.retain_on_delete
                        ),
                        ES_DATA_DIR,
                    ),
                ),
                networks=(self._logging_network(contract.Alias.ELASTICSEARCH),),
            ),
        )

    def _job(
        self,
        name: str,
        docker_suffix: str,
        environment: dict[str, str],
        configs: tuple[ConfigFile, ...],
        secrets: tuple[SecretFile, ...],
        depends_on: pulumi.Resource,
    ) -> Deployment:
        """A one-shot job: the Elasticsearch image (bash and curl) running setup.sh once.

        Its gate (condition exited-zero) fails the `up` when it failed, after
        running it once more, and every later `up` runs it again until it
        succeeds. What depends on the job waits for the gate. A change of its
        inputs (retention, a password, the saved search) replaces it and so
        runs it again.
        """
        args = self._args
        job = Workload(
            name=name,
            docker_name=f"{args.prefix}-{docker_suffix}",
            role=ROLE_JOB,
            kind=Kind.JOB,
            image=self._es_image,
            memory_mb=SETUP_MEMORY_MB,
            cpus=SETUP_CPUS,
            health=None,
            logs=self._logs,
            labels=labels(args.stack, ROLE_JOB),
            user=ELASTIC_IMAGE_USER,
            command=["/bin/bash", SETUP_SCRIPT_FILE],
            env=dict(sorted(environment.items())),
            configs=(ConfigFile("setup-script", SETUP_SCRIPT_FILE, render.setup_script()), *configs),
            secrets=secrets,
            networks=(self._logging_network(),),
            ready_timeout_seconds=WAIT_TIMEOUT_SECONDS,
        )
        return args.platform.run(self, job, depends_on=[depends_on])

    def _setup_job(self, name: str) -> Deployment:
        """The job that sets up Elasticsearch: kibana_system's password, the lifecycle policy, the template."""
        args = self._args
        environment = render.setup_environment(
            elasticsearch_url=render.ELASTICSEARCH_URL,
            elastic_password_file=contract.ELASTIC_PASSWORD_FILE,
            kibana_system_password_file=contract.KIBANA_SYSTEM_PASSWORD_FILE,
            ilm_policy_file=SETUP_POLICY_FILE,
            index_template_file=SETUP_TEMPLATE_FILE,
            wait_seconds=SETUP_WAIT_SECONDS,
        )
        return self._job(
            f"{name}-setup",
            "elk-setup",
            environment,
            (
                ConfigFile("ilm-policy", SETUP_POLICY_FILE, render.render_ilm_policy(args.config.retention_days)),
                ConfigFile("index-template", SETUP_TEMPLATE_FILE, render.render_index_template()),
            ),
            (
                SecretFile("elastic-password", contract.ELASTIC_PASSWORD_FILE, args.elastic_password),
                SecretFile("kibana-system-password", contract.KIBANA_SYSTEM_PASSWORD_FILE, args.kibana_system_password),
            ),
            self.elasticsearch.ready,
        )

    def _kibana_setup_job(self, name: str) -> Deployment:
        """The job that sets up Kibana, after Kibana is ready: the data view and the breaker events' saved search."""
        environment = render.kibana_setup_environment(
            kibana_url=render.KIBANA_URL,
            elastic_password_file=contract.ELASTIC_PASSWORD_FILE,
            data_view_file=SETUP_DATA_VIEW_FILE,
            saved_search_file=SETUP_SAVED_SEARCH_FILE,
            wait_seconds=SETUP_WAIT_SECONDS,
        )
        return self._job(
            f"{name}-kibana-setup",
            "kibana-setup",
            environment,
            (
                ConfigFile("data-view", SETUP_DATA_VIEW_FILE, render.render_data_view()),
                ConfigFile("saved-search", SETUP_SAVED_SEARCH_FILE, render.render_saved_search()),
            ),
            (SecretFile("elastic-password", contract.ELASTIC_PASSWORD_FILE, self._args.elastic_password),),
            self.kibana.ready,
        )

    def _logstash(self, name: str) -> Deployment:
        args, cfg = self._args, self._args.config
        heap = int(cfg.logstash_memory_mb * HEAP_SHARE)
        return args.platform.run(
            self,
            self._workload(
                f"{name}-logstash",
                "logstash",
                self._image(f"{name}-logstash", args.images.logstash),
                cfg.logstash_memory_mb,
                LOGSTASH_CPUS,
                render.logstash_health_command(),
                JVM_START_PERIOD_SECONDS,
                # One on every node of a swarm: each node's Docker daemon sends
                # its containers' logs to the GELF port on its own loopback.
                kind=Kind.PER_NODE,
                env={"LS_JAVA_OPTS": f"-Xms{heap}m -Xmx{heap}m"},
                secrets=(
                    SecretFile(
                        "logstash-pipeline",
                        LOGSTASH_PIPELINE_FILE,
                        args.elastic_password.apply(render.render_logstash_pipeline),
                    ),
                ),
                # Docker maps the published port through the edge network; the
                # internal logging network has no gateway to map it through.
                networks=(Attach(self.edge_network), self._logging_network(contract.Alias.LOGSTASH)),
                ports=(Publish(contract.GELF_PORT, cfg.gelf_port, "127.0.0.1", "udp"),),
                exposure=(
                    "GELF from each node's own Docker daemon on 127.0.0.1; drop other sources in DOCKER-USER "
                    "(docs/swarm.md, Preparing a swarm)"
                ),
            ),
            depends_on=[self.setup.ready],
        )

    def _kibana(self, name: str) -> Deployment:
        args, cfg = self._args, self._args.config
        public_url = self.kibana_url
        kibana_yml = args.kibana_system_password.apply(lambda password: render.render_kibana_yml(password, public_url))
        return args.platform.run(
            self,
            self._workload(
                f"{name}-kibana",
                "kibana",
                self._image(f"{name}-kibana", args.images.kibana),
                cfg.kibana_memory_mb,
                KIBANA_CPUS,
                render.kibana_health_command(),
                KIBANA_START_PERIOD_SECONDS,
                env={"NODE_OPTIONS": f"--max-old-space-size={int(cfg.kibana_memory_mb * HEAP_SHARE)}"},
                secrets=(SecretFile("kibana-yml", KIBANA_CONFIG_FILE, kibana_yml),),
                networks=(Attach(self.edge_network), self._logging_network(contract.Alias.KIBANA)),
                ports=(Publish(contract.KIBANA_PORT, cfg.kibana_port, "127.0.0.1", "tcp"),),
                exposure=(
                    "Kibana, behind its login; allow only the admin network in DOCKER-USER "
                    "(docs/swarm.md, Preparing a swarm)"
                ),
            ),
            depends_on=[self.setup.ready],
        )
