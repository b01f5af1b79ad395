"""A module sent whole with remote_exec(module) in test_channel.py."""

if __name__ == "__channelexec__":
    channel.send("module ran as " + __name__)  # noqa: F821 - injected remotely
