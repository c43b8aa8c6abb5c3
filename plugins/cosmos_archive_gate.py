"""The DAG's RU gate: CosmosRuQuietSensor configured at run time from the ``cosmos_archive_ru`` Variable.

Reading the Variable in ``execute`` (not when the DAG file is parsed) keeps parsing free of metadata-DB calls and
lets operators retune the gate from the UI between runs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import cosmos_archive_runtime as runtime
from ru_sensor import CosmosRuQuietSensor


class ArchiveRuGate(CosmosRuQuietSensor):
    def __init__(self, **kwargs: Any) -> None:
        # Placeholders; the real values are loaded from the Variable when the task runs.
        super().__init__(metrics_endpoint="", resource_id="", provisioned_ru_s=1.0, **kwargs)

    def execute(self, context: Any) -> Any:
        with runtime.archive_errors():  # a bad cosmos_archive_ru Variable fails the gate without retries
            gov = runtime.load_ru_governance()
        if gov.metrics_endpoint is None or gov.resource_id is None:
            self.log.warning("RU gate open: no metrics_endpoint/resource_id in Variable %s, so usage is not "
                             "checked; the archiver still sends low priority and backs off on 429s",
                             runtime.RU_VARIABLE)
            return None
        self.metrics_endpoint, self.resource_id = gov.metrics_endpoint, gov.resource_id
        self.provisioned_ru_s, self.threshold = gov.provisioned_ru_s, gov.gate_threshold
        self.quiet_window = timedelta(seconds=gov.quiet_window_s)
        self.grain, self.lagging_grains = timedelta(seconds=gov.grain_s), gov.lagging_grains
        self.credential = gov.credential
        return super().execute(context)
