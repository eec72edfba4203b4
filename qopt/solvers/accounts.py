"""Whether the accounts remote backends need are configured here, checked offline.

``qopt solvers`` and the registry ask these questions without building a backend, so this
module imports no backend framework at import time: dwave-cloud-client's config reader and
qiskit-ibm-runtime are imported only inside the functions that read their configuration.

Examples:
    >>> from qopt.solvers.accounts import ibm_status, leap_status
    >>> ready, message = leap_status()   # reads the local config; no network
    >>> isinstance(ready, bool) and isinstance(message, str)
    True
    >>> configured, message = ibm_status()
    >>> isinstance(configured, bool) and isinstance(message, str)
    True
"""

from __future__ import annotations

import os

__all__ = [
    "IBM_HOW_TO_CONFIGURE",
    "LEAP_HOW_TO_CONFIGURE",
    "ibm_status",
    "leap_status",
    "leap_token_source",
]

#: How to configure a Leap token, appended to every "no token" message.
LEAP_HOW_TO_CONFIGURE = (
    "Configure a Leap API token (copy it from https://cloud.dwavesys.com/leap/) with "
    "'dwave config create', or set the DWAVE_API_TOKEN environment variable, or pass "
    "token=... to the solver."
)

#: How to configure an IBM Quantum account, appended to every "no account" message.
IBM_HOW_TO_CONFIGURE = (
    "Configure an IBM Quantum account once with "
    "QiskitRuntimeService.save_account(token='<API key>', instance='<CRN>', set_as_default=True) "
    "(from qiskit_ibm_runtime), or set the environment variable QISKIT_IBM_TOKEN "
    "(and QISKIT_IBM_INSTANCE)."
)


def leap_token_source(
    *, token: str | None = None, config_file: str | None = None, profile: str | None = None
) -> tuple[bool, str]:
    """Resolve a Leap token exactly as dwave-cloud-client will, without any network call.

    Returns:
        ``(found, where)``: where the token comes from, or why there is none.
    """
    from dwave.cloud.config import load_config
    from dwave.cloud.config.exceptions import ConfigFileError
    from dwave.cloud.config.loaders import get_configfile_paths

    try:
        # Same resolution as Client.from_config: kwargs over environment over file. It
        # raises for an explicit config file that cannot be read, as the client would.
        config = load_config(
            config_file=config_file, profile=profile, **({"token": token} if token else {})
        )
    except ConfigFileError as error:
        named_by = "config_file=" if config_file else "DWAVE_CONFIG_FILE"
        return False, (
            f"the D-Wave config file named by {named_by} cannot be used ({error}), so no "
            "client can be created. Fix or unset it."
        )
    except ValueError as error:  # an explicit profile that no config file defines
        return False, f"the D-Wave configuration cannot be loaded ({error})."
    if not config.get("token"):
        explicit = config_file or os.environ.get("DWAVE_CONFIG_FILE")
        files = [explicit] if explicit else get_configfile_paths()
        searched = f"config file(s) {', '.join(files)}" if files else "no config file found"
        return False, f"no Leap API token is configured ({searched}; DWAVE_API_TOKEN unset)."
    if token:
        return True, "the token= option"
    if os.environ.get("DWAVE_API_TOKEN"):
        return True, "the DWAVE_API_TOKEN environment variable"
    explicit = config_file or os.environ.get("DWAVE_CONFIG_FILE")
    files = [explicit] if explicit else get_configfile_paths()
    chosen = profile or os.environ.get("DWAVE_PROFILE")
    where = f"the config file {', '.join(files)}"
    return True, where + (f" (profile '{chosen}')" if chosen else "")


def leap_status() -> tuple[bool, str]:
    """Whether a Leap API token is configured here, and where from; no network call.

    The token is resolved the way dwave-cloud-client resolves it (``DWAVE_API_TOKEN`` over the
    config file found by auto-detection or named by ``DWAVE_CONFIG_FILE``, profile from
    ``DWAVE_PROFILE``). A configured token is not proven valid until the first solve.

    Returns:
        ``(True, where)`` when a token is configured, or ``(False, why and how to configure)``.

    Examples:
        >>> from qopt.solvers.dwave import leap_status
        >>> ready, message = leap_status()
        >>> message.startswith("Leap token configured") if ready else "dwave config" in message
        True
    """
    found, where = leap_token_source()
    if found:
        return True, f"Leap token configured (from {where})"
    return False, f"Not configured: {where} {LEAP_HOW_TO_CONFIGURE}"


def ibm_status() -> tuple[bool, str]:
    """Whether an IBM Quantum account is configured here, checked without the network.

    Looks for the environment variable ``QISKIT_IBM_TOKEN``, then for accounts saved with
    ``QiskitRuntimeService.save_account`` (``~/.qiskit/qiskit-ibm.json``). A configured account
    may still be refused by IBM (expired key, wrong instance); only a hardware run tells.
    The local simulator needs no account.

    Returns:
        ``(configured, message)``; reading errors are reported in the message, never raised.

    Examples:
        >>> from qopt.solvers.qiskit_qaoa import ibm_status
        >>> configured, message = ibm_status()
        >>> isinstance(configured, bool) and isinstance(message, str)
        True
    """
    if os.environ.get("QISKIT_IBM_TOKEN"):
        return True, "IBM Quantum token from the environment variable QISKIT_IBM_TOKEN"
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService

        accounts = QiskitRuntimeService.saved_accounts()
    except Exception as error:  # a missing package or an unreadable account file
        return False, (
            f"could not read saved IBM Quantum accounts ({type(error).__name__}: {error}); "
            f"the local simulator works without one. {IBM_HOW_TO_CONFIGURE}"
        )
    if accounts:
        return True, f"saved IBM Quantum account(s): {', '.join(sorted(accounts))}"
    return False, (
        "no IBM Quantum account configured; the local simulator works without one, IBM "
        f"hardware needs one. {IBM_HOW_TO_CONFIGURE}"
    )
