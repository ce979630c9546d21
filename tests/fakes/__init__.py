"""Stand-ins for servers that cannot run on the build machines, spoken to over real sockets."""
