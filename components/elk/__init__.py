"""The logging stack: Elasticsearch, Logstash, Kibana and their one-shot setup job."""

from components.elk.component import Elk, ElkArgs

__all__ = ["Elk", "ElkArgs"]
