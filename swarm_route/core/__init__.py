"""The plain-Python core: every routing concept as an ordinary class a unit test can call without Ray."""
