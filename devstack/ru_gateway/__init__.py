"""Local RU gateway: charges, throttles (provisioned RU/s, priority, throughput buckets; or a serverless account,
which honours neither) and reports Cosmos DB RU.

Public API (see each module's docstring): ``start_gateway``/``Gateway`` (proxy.py), ``GatewaySettings`` (config.py),
``ChargeModel`` (charge_model.py: presets ``published``, the default, and ``seed``),
``classify_traffic``, ``FaultSpec`` (faults.py: service faults on request);
process entry point: ``python -m devstack.ru_gateway --help``.
"""

from devstack.ru_gateway.charge_model import ChargeModel, QueryLoad, RequestKind, classify
from devstack.ru_gateway.config import ACCOUNT_MODES, DEFAULT_PROVISIONED_RU, GatewaySettings, GatewaySettingsError
from devstack.ru_gateway.faults import FAULT_KINDS, FaultSpec, FaultSpecError
from devstack.ru_gateway.metrics import NAMESPACE as METRICS_NAMESPACE
from devstack.ru_gateway.proxy import SUBSCRIPTION_ID, TRAFFIC_HEADER, Gateway, classify_traffic, start_gateway
from devstack.ru_gateway.throttle import SUBSTATUS_RU_BUDGET_EXCEEDED, SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED

__all__ = [
    "ACCOUNT_MODES",
    "DEFAULT_PROVISIONED_RU",
    "FAULT_KINDS",
    "METRICS_NAMESPACE",
    "SUBSCRIPTION_ID",
    "SUBSTATUS_RU_BUDGET_EXCEEDED",
    "SUBSTATUS_THROUGHPUT_BUCKET_EXCEEDED",
    "TRAFFIC_HEADER",
    "ChargeModel",
    "FaultSpec",
    "FaultSpecError",
    "Gateway",
    "GatewaySettings",
    "GatewaySettingsError",
    "QueryLoad",
    "RequestKind",
    "classify",
    "classify_traffic",
    "start_gateway",
]
