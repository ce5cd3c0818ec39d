"""One error type for everything a user can get wrong, so the CLI and the UI show a sentence, not a traceback."""


class SynergyError(Exception):
    """Base class of every error the project raises on purpose."""


class RegistryError(SynergyError):
    """A registry file is missing, malformed, or has an invalid entry."""


class DatasetError(SynergyError):
    """A dataset cannot be loaded or split as declared."""


class BackboneError(SynergyError):
    """A backbone cannot be built or its weights cannot be found."""


class StoreError(SynergyError):
    """The feature store holds something unexpected or cannot be written."""
