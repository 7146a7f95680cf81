"""Shipped scenario configs (TOML); installed as package ``mcexplore.configs`` so that
``mcexplore.scenario.load_scenario("thread-2018")`` finds them after a plain install."""
