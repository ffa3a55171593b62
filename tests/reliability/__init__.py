"""The reliability suite (issue 5): it tries hard to lose an order, send something
twice, oversell or leak a credential, and counts what it tried. See RELIABILITY.md."""
