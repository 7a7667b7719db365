"""`HDInsightCompute`: attach a Spark host over SSH as a compute target (kind ``spark``).

What the SDK attached as an HDInsight cluster is, here, any machine with ``spark-submit`` reached over SSH: a
YARN edge node, a standalone master, or one machine running Spark in local mode. Attaching checks what
`RemoteCompute` checks (host key, login, Python) plus spark-submit and Java; runs then go through
nbml.compute.spark.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from nbml._aio import run_sync
from nbml.compute import _ssh_secrets as secrets
from nbml.compute.spark import check_master
from nbml.compute.ssh_target import RemoteAttachConfiguration, RemoteCompute, check_options
from nbml.compute.targets import ComputeTarget
from nbml.errors import ComputeTargetException

if TYPE_CHECKING:
    from nbml.workspace import Workspace

SPARK_FIELDS = ("master", "spark_home", "java_home", "spark_submit_options", "spark_conf")


@dataclasses.dataclass
class SparkAttachConfiguration(RemoteAttachConfiguration):
    """What `HDInsightCompute.attach_configuration` returns: an SSH host plus its Spark settings."""

    master: str | None = None
    spark_home: str | None = None
    java_home: str | None = None
    spark_submit_options: list[str] = dataclasses.field(default_factory=list)
    spark_conf: dict[str, str] = dataclasses.field(default_factory=dict)
    kind: str = "spark"

    def _config(self, workspace: Workspace, name: str) -> dict[str, Any]:
        config = super()._config(workspace, name)
        if isinstance(self.spark_submit_options, str) or not all(isinstance(o, str) for o in self.spark_submit_options):
            raise ComputeTargetException("spark_submit_options must be a list of strings, e.g. "
                                         "['--driver-memory', '2g'].")
        if not isinstance(self.spark_conf, dict):
            raise ComputeTargetException("spark_conf must be a dict of Spark properties, e.g. "
                                         "{'spark.executor.memory': '2g'}.")
        config.update(master=check_master(self.master), spark_home=self.spark_home, java_home=self.java_home,
                      spark_submit_options=list(self.spark_submit_options),
                      spark_conf={str(k): str(v) for k, v in self.spark_conf.items()})
        return config

    def validate(self, workspace: Workspace, name: str) -> dict[str, Any]:
        """The SSH checks, then spark-submit and Java on the host; returns the config to store (no secrets)."""
        config = super().validate(workspace, name)
        from nbml.compute.spark import SparkBackend

        async def check() -> dict[str, Any]:
            backend = SparkBackend(name, config, workspace.path)
            try:
                return await backend.spark_check()
            finally:
                await backend.close()

        try:
            found = run_sync(check())
        except BaseException:
            secrets.forget(name)
            raise
        config.update(spark_submit=found["spark_submit"], java=found["java"])
        return config


class HDInsightCompute(RemoteCompute):
    """A Spark host reached over SSH (``HDInsightCompute.attach_configuration`` + ``ComputeTarget.attach``)."""

    type = "HDInsight"
    kind = "spark"

    @staticmethod
    def attach_configuration(address: str, ssh_port: int = 22, username: str | None = None,  # type: ignore[override]
                             password: str | None = None, private_key_file: str | None = None,
                             private_key_passphrase: str | None = None, **options: Any) -> SparkAttachConfiguration:
        """Describe a Spark host to attach with ``ComputeTarget.attach(ws, name, config)``.

        Parameters
        ----------
        address, ssh_port, username, password, private_key_file, private_key_passphrase:
            As for `RemoteCompute.attach_configuration`: host keys are verified, a password or passphrase is
            kept in memory only.
        **options:
            Spark: ``master`` (``yarn``, ``spark://HOST:7077``, ``local[N]``; default: the host's own),
            ``spark_home`` (where Spark is, when ``SPARK_HOME`` isn't set there and spark-submit isn't on the
            PATH), ``java_home``, ``spark_submit_options`` (extra spark-submit arguments, a list),
            ``spark_conf`` (Spark properties for every run, a dict). Any `RemoteCompute` option too
            (``trust_host_key``, ``known_hosts``, ``python``, ``run_root``...).
        """
        check_options(SparkAttachConfiguration, "HDInsightCompute", options,
                      hide=frozenset({"address", "ssh_port", "username"}))
        return SparkAttachConfiguration(address=address, ssh_port=ssh_port, username=username, password=password,
                                        private_key_file=private_key_file,
                                        private_key_passphrase=private_key_passphrase, **options)

    @staticmethod
    def attach(  # type: ignore[override]
            workspace: Workspace, name: str, address: str | RemoteAttachConfiguration | None = None,
            ssh_port: int = 22, username: str | None = None, private_key_file: str | None = None,
            private_key_passphrase: str | None = None, password: str | None = None,
            **options: Any) -> HDInsightCompute:
        """Attach a Spark host by address and credentials (or ``HDInsightCompute.attach(ws, name, config)``)."""
        if isinstance(address, RemoteAttachConfiguration):
            return ComputeTarget.attach(workspace, name, address)  # type: ignore[return-value]
        if not address:
            raise ComputeTargetException("HDInsightCompute.attach needs address= (the Spark host's name or IP).")
        config = HDInsightCompute.attach_configuration(address, ssh_port, username, password, private_key_file,
                                                       private_key_passphrase, **options)
        return ComputeTarget.attach(workspace, name, config)  # type: ignore[return-value]

    @property
    def master(self) -> str | None:
        return self.config.get("master")
