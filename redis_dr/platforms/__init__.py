"""Where target Redis servers live: the platform contract and its adapters."""
