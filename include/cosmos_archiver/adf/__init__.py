"""The Azure Data Factory copy path: pipeline definitions (resources/), deployment, run parameters, indexing an ADF
copy, and management clients for the loopback stand-in (devstack/adf_standin).

Imports neither Airflow nor the stand-in's server machinery at package import; the Airflow adapters live in
``plugins/cosmos_archive_adf.py``.
"""

PIPELINE_NAME = "cosmos_archive_copy"
API_VERSION = "2018-06-01"
