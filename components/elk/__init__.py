"""The logging stack: Elasticsearch, Logstash, Kibana and their one-shot setup job."""
