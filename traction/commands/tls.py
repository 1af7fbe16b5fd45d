"""``traction tls``: certificates for the HTTP service on a clinic network without its own PKI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from traction.errors import friendly_errors
from traction.tls import MAX_SERVER_DAYS, self_signed

tls_app = typer.Typer(
    help="TLS certificates for `traction serve` on a clinic network.", no_args_is_help=True
)
console = Console()


@tls_app.command("self-signed")
def make_self_signed(
    host: Annotated[
        list[str],
        typer.Option(
            "--host",
            help="A name or IP address clients use to reach this workstation; repeat for each.",
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for ca.pem, server.pem and the keys (0600).")
    ] = Path("tls"),
    days: Annotated[
        int, typer.Option(min=1, max=MAX_SERVER_DAYS, help="Days the server certificate is valid.")
    ] = 365,
) -> None:
    """Make a clinic authority (ca.pem) and a server certificate signed by it.

    Install ca.pem once as a trusted authority on the clinic's computers (or pass it to
    clients: curl --cacert ca.pem); keep ca-key.pem private, on this machine: running the
    command again in the same folder signs a new server certificate with the same authority, so
    clients need nothing new. Then set tls_certfile = "DIR/server.pem" and
    tls_keyfile = "DIR/server-key.pem" in the settings file.

    Example: traction tls self-signed --host ws1.clinic.lan --host 192.168.10.20 --out /etc/traction/tls
    """
    with friendly_errors():
        files = self_signed(host, out, days)
        console.print(
            f"server certificate for {', '.join(host)}: {files.server_cert} (key "
            f"{files.server_key})\nclinic authority to trust on clients: {files.ca_cert}\n"
            "settings:\n"
            f'  tls_certfile = "{files.server_cert.resolve()}"\n'
            f'  tls_keyfile = "{files.server_key.resolve()}"'
        )
