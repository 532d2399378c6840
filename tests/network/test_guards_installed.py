"""The private pynetdicom hooks must install on the pynetdicom installed here: no silent
fallback to stock behaviour in CI. A failure means pynetdicom changed: re-verify the
hooks on the new version (and the pin in pyproject.toml) before relaxing anything."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from pathlib import Path

import pynetdicom
import pytest
from packaging.requirements import Requirement

from dicom_node.network import guard, tweaks

ROOT = Path(__file__).resolve().parents[2]


def _installers() -> dict[str, Callable[[], bool]]:
    from dicom_node.network import (
        contexts,
        inline,
        loop_delay,
        responses,
        spool,
    )

    return {
        "spool": spool.install,
        "responses": responses.install,
        "contexts": contexts.install,
        "inline": inline._check,
        "loop_delay": loop_delay.check,
    }


def test_pynetdicom_is_in_the_pinned_range() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    req = next(Requirement(d) for d in deps if d.startswith("pynetdicom"))
    assert req.specifier.contains(pynetdicom.__version__), (
        f"pynetdicom {pynetdicom.__version__} outside the verified range {req}"
    )
    assert req.specifier.contains("3.0.4")  # the version the hooks were verified on


def test_receive_guards_install() -> None:
    assert guard.install(), "hostile-input guards did not install on this pynetdicom"


@pytest.mark.parametrize("name", sorted(tweaks.TWEAKS))
def test_each_kept_tweak_installs(name: str) -> None:
    installers = _installers()
    assert set(installers) == set(tweaks.TWEAKS), "a tweak without an install check"
    assert installers[name](), (
        f"tweak {name} did not install on pynetdicom {pynetdicom.__version__}"
    )


@pytest.mark.parametrize("name", ["contexts", "responses"])
def test_a_tweak_that_does_not_install_is_not_applied(
    name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A tweak whose install check fails (another pynetdicom: the pinned one cannot make
    it fail, so the attribute it checks is replaced for this test) is left out of what
    the node applies and lists, with an error; it was listed as applied."""
    from pynetdicom import dimse
    from pynetdicom.presentation import PresentationContext

    if name == "contexts":  # a pynetdicom with its own __deepcopy__
        monkeypatch.setattr(PresentationContext, "__deepcopy__", lambda s, m: s, raising=False)
    else:  # a pynetdicom whose send_msg differs
        monkeypatch.setattr(dimse.DIMSEServiceProvider, "send_msg", lambda s, p, c: None)
    with caplog.at_level(logging.INFO, logger="dicom_node.network.tweaks"):
        applied = tweaks.install(frozenset(tweaks.TWEAKS))
    assert applied == frozenset(tweaks.TWEAKS) - {name}
    assert f"tweak {name} NOT installed" in caplog.text
    assert f"pynetdicom tweaks: {', '.join(sorted(applied))}\n" in caplog.text


def test_tweak_switch_parses() -> None:
    assert tweaks.enabled({}) == frozenset(tweaks.TWEAKS)
    assert tweaks.enabled({"DICOM_NODE_TWEAKS": "none"}) == frozenset()
    assert tweaks.enabled({"DICOM_NODE_TWEAKS": "spool"}) == {"spool"}
    assert tweaks.enabled({"DICOM_NODE_TWEAKS": "-spool"}) == frozenset(tweaks.TWEAKS) - {"spool"}
    with pytest.raises(ValueError, match="unknown"):
        tweaks.enabled({"DICOM_NODE_TWEAKS": "turbo"})


def test_the_scp_servers_shutdown_still_replaces_all_of_pynetdicoms() -> None:
    """StorageSCP's server (made by ``AE.make_server``) overrides pynetdicom's shutdown,
    which ends by removing the server from the list of those ``AE.start_server`` started
    (ValueError for one it never started). The override does the rest itself: if
    pynetdicom's shutdown does more one day, this fails, and the override must follow."""
    import inspect

    from pynetdicom.transport import ThreadedAssociationServer

    body = inspect.getsource(ThreadedAssociationServer.shutdown).splitlines()
    statements = [line.strip() for line in body[2:] if line.strip()]  # after the docstring
    assert statements == [
        "super().shutdown()",
        "self.server_close()",
        'self.ae._servers.remove(cast("ThreadedAssociationServer", self))',
    ]
