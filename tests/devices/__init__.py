"""Device simulators for the configuration-job tests: an IOS-like CLI over SSH (ios_sim) and
a NETCONF server over SSH (netconf_sim), both on asyncssh in the test's event loop."""
