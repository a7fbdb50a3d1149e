"""Local AWS emulator support: moto extensions, server, and demo topology."""
