"""A local mail sink for `make run`: accepts mail on 127.0.0.1 and keeps each as a .eml file.

    python devtools/mail_sink.py FOLDER [--port 8025]

Every message the planner's e-mail action sends lands in FOLDER as
``<date>-<time>-<n>.eml``, which any mail program (or a text editor) opens.  Nothing is
forwarded anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import signal
from datetime import datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class FolderHandler:
    """Writes every received message into a folder, one .eml file each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{stamp}-{next(self.numbers)}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        print(f"mail for {', '.join(envelope.rcpt_tos)} saved as {path}", flush=True)
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    stopping = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so the thread inherits the mask and the main
    # thread alone receives them in sigwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    controller = Controller(FolderHandler(args.folder), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"mail sink on 127.0.0.1:{args.port}, saving to {args.folder}", flush=True)
    try:
        signal.sigwait(stopping)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
