"""Lets pytest import deploykit_acme from this source tree, also when run from another folder
(pytest puts the folder of a conftest.py on sys.path)."""
