"""Code shared by the microstack services, and the contract shared with the program."""
