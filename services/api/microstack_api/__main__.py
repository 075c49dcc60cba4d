"""`python -m microstack_api`: run the API service until SIGTERM."""

from microstack_api.app import create_app
from microstack_common import contract
from microstack_common.lifecycle import run_service

if __name__ == "__main__":
    run_service(service_name="api", default_port=contract.API_PORT, build_app=create_app)
