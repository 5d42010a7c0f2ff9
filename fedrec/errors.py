"""fedrec's error types. Each message names the bad value and how to fix it."""


class FedrecError(Exception):
    """Base of every error fedrec raises on purpose; the CLI prints these without a trace."""


class ConfigError(FedrecError, ValueError):
    """A configuration value is unknown, of the wrong type, or out of range."""


class DataError(FedrecError, ValueError):
    """An input data file is missing, empty, malformed or unusable for the protocol."""


class ModelError(FedrecError, RuntimeError):
    """A model was used out of order (scored before fit) or a saved model does not match."""


class ReleaseBlocked(FedrecError):
    """The release audit's gate blocked the model: a check fell outside its bound. The audit
    itself was written (``DIR/audit/audit.json``); the CLI exits with status 3."""


class FloorRefused(FedrecError):
    """A store refused a round that asked for less protection than the store's own floor (fewest
    stores in an unmasked sum, least noise multiplier): the floor is set on the store, never by
    the server, and the store answers with an error instead of an update."""


class WireContractError(FedrecError):
    """A store was about to send a key the wire contract (fedrec.federation.wire_contract) does
    not name, or one its privacy mode does not allow; the reply is not sent."""
