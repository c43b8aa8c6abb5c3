# Source me: the environment every local command of cosmos-archive runs in (Airflow on SQLite in .airflow/).
COSMOS_ARCHIVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export COSMOS_ARCHIVE_ROOT
export PATH="$COSMOS_ARCHIVE_ROOT/.venv/bin:$COSMOS_ARCHIVE_ROOT/bin:$PATH"
export PYTHONPATH="$COSMOS_ARCHIVE_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$COSMOS_ARCHIVE_ROOT/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$COSMOS_ARCHIVE_ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$COSMOS_ARCHIVE_ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export COSMOS_ARCHIVE_STATE_DIR="${COSMOS_ARCHIVE_STATE_DIR:-$COSMOS_ARCHIVE_ROOT/.local-stack}"
# Trust the project's local CA (public roots included) so TLS verification stays on against the local stack.
export REQUESTS_CA_BUNDLE="$COSMOS_ARCHIVE_STATE_DIR/tls/ca-bundle.pem"
export SSL_CERT_FILE="$REQUESTS_CA_BUNDLE"
export COSMOS_ARCHIVE_CA_BUNDLE="$REQUESTS_CA_BUNDLE"  # what the clients verify loopback endpoints with first
