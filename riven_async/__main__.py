from __future__ import annotations

from riven_async.cli import main

main()
