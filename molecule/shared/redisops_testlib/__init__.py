"""The Molecule scenarios' test library (molecule/pytest.ini puts molecule/shared on sys.path);
host_client.py and fingerprint.lua are the programs it runs on the test hosts."""
