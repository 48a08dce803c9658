"""Repository contents the deployment tests run."""

from __future__ import annotations

from tests.support.git_server import GitFile

SCRIPTS = {
    "deploy.sh": GitFile(
        '#!/bin/sh\necho "hello from $SHIPYARD_HOST args=$*"\necho "token=$API_TOKEN"\n'
        'echo "region=$REGION"\necho "to stderr" >&2\n'
    ),
    "check.sh": GitFile(
        '#!/bin/sh\ncase "$SHIPYARD_HOST" in bad-*) echo "check failed on $SHIPYARD_HOST"; exit 3;; esac\n'
        'echo "check ok"\n'
    ),
    "slow.sh": GitFile('#!/bin/sh\necho "slow started $1"\nsleep "${2:-30}"\necho "slow done"\n'),
    "count.sh": GitFile('#!/bin/sh\necho run >> "$1"\necho "counted"\n'),
    "chatty.py": GitFile(
        "import sys\nfor i in range(int(sys.argv[1])):\n    print(f'line {i:06d} ' + 'x' * 80)\n"
    ),
    "tools/never.txt": "not a script",
    "README.md": "# deploy scripts\n",
}
