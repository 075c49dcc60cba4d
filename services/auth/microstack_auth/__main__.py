"""`python -m microstack_auth`: run the auth service until SIGTERM."""

from microstack_auth.app import create_app
from microstack_common import contract
from microstack_common.lifecycle import run_service

if __name__ == "__main__":
    run_service(service_name="auth", default_port=contract.AUTH_PORT, build_app=create_app)
