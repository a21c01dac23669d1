"""Root conftest: the test-box fixtures (`box`, `box_1c`, `boxes`, `fresh_box`, `box_pool`) for
every test folder. See tests/README.md."""

pytest_plugins = ["tests.boxes.pytest_plugin"]
