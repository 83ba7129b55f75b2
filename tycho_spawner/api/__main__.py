"""``python -m tycho_spawner.api``: the same as the ``tycho-api`` console script."""
from .app import main

if __name__ == "__main__":
    main()
