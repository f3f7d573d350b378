"""The web door: `screening web`, the console for admins and each extension's user."""
