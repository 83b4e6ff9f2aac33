"""What the tests and the benchmark share: rendering the template, running processes, the
rendered backend's virtualenv and commands, and a throwaway PostgreSQL. Imports nothing of
tests/ or bench/, so both use it without importing each other."""
