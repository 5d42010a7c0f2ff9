"""Federation over Flower: wire format, client and server logic, certificates."""
