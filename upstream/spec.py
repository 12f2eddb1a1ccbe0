"""Names the Person API defines (upstream/contract/persontjenesten-openapi-v2.yaml), kept once for the client,
the fake and the mapping.

The tuples copy the contract's enums in its order; ``tests/upstream/test_spec.py`` compares them with the
OpenAPI file, so a new contract version that adds a value fails a test instead of being missed. They are
copied rather than read from the YAML at run time: the client and the fake then need no YAML parser, and a
10,000-line file is not parsed at every start.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

__all__ = [
    "ACCESS_BUNDLES",
    "API_VERSIONS",
    "BULK_MAX",
    "EVENT_PAGE_MAX",
    "EVENT_TYPES",
    "INFORMATION_PARTS",
    "OPERATIONS",
    "SCOPES",
    "contract_path",
    "path_prefix",
    "version_header",
]

#: ``InformationPart``: what a person request asks for (``informationParts``, at least one).
INFORMATION_PARTS: Final = (
    "AddressProtection", "CitizenshipRetention", "ResidentialAddress", "UseOfSamiLanguage", "SharedResidence",
    "Death", "FalseIdentity", "FamilyRelation", "Birth", "BirthInNorway", "ParentalResponsibility",
    "SamiParliamentElectoralRegistryStatus", "NorwegianIdentificationNumber", "IdentityVerification",
    "ImmigrationToNorway", "Gender", "ResiduaryEstateContactInformation", "IdentificationDocument", "Name",
    "ResidencePermit", "StayOnSvalbard", "PresentAddress", "PostalAddress", "ForeignPostalAddress",
    "PreferredContactAddress", "MaritalStatus", "Citizenship", "Status", "ForeignPersonIdentificationNumber",
    "EmigrationFromNorway", "ImmigrationAuthoritiesIdentificationNumber", "GuardianshipOrFuturePowerOfAttorney",
    "DeprivedLegalAuthority", "CommonContactRegisterInformation", "LegalAuthority",
)

#: ``EventType``: FREG's hendelsestyper in English, plus Persontjenesten's own (PersonCorrected,
#: PersonPopulated — the null-day extract —, the alternate identification number events …).
EVENT_TYPES: Final = (
    "Unknown", "PersonIsCreated", "PersonIsReactivated", "PersonIsUpdated", "PersonIsDiscontinued",
    "PersonIsContinuedAsValidUponMerger", "PersonIsDiscontinuedAsDuplicate", "PersonIsChangedBySplitting",
    "PersonIsRestoredBySplitting", "PersonIsDeceased", "PersonIsResident", "PersonIsEmigrated", "ChangeInStatus",
    "ChangeInIdentityVerification", "ChangeInForeignPersonIdentificationNumber",
    "ChangeInImmigrationAuthoritiesIdentificationNumber", "ChangeInIdentificationDocument",
    "ChangeInNorwegianIdentificationNumber", "ChangeInFalseIdentity", "ChangeInResiduaryEstateContactInformation",
    "ChangeInSharedResidence", "ChangeInBirth", "ChangeInBirthInNorway", "ChangeInGender", "ChangeInFamilyRelation",
    "ChangeInMaritalStatus", "ChangeInDeath", "ChangeInName", "ChangeInAddressProtection",
    "ChangeInResidentialAddress", "ChangeInResidentialAddressWithoutRelocation", "ChangeInPresentAddress",
    "ChangeInImmigrationToNorway", "ChangeInEmigrationFromNorway", "ChangeInUseOfSamiLanguage",
    "ChangeInSamiParliamentElectoralRegistryStatus", "ChangeInContactinformation", "ChangeInParentalResponsibility",
    "ChangeInCitizenship", "ChangeInResidency", "ChangeInResidencyOnSvalbard", "ChangeInGuardianship",
    "ChangeInPerson", "PersonCorrected", "PersonPopulated", "ChangeInPostalAddress", "ChangeInForeignPostalAddress",
    "ChangeInResidencePermit", "ChangeInDeprivedLegalAuthority", "CreatedAlternateIdentificationNumber",
    "UpdatedAlternateIdentificationNumber", "ChangeInLegalAuthority", "ChangeInCommonContactRegisterInformation",
)

API_VERSIONS: Final = ("2", "3")

#: The two authorisation bundles (two route trees): statutory access ("public with legal basis", FREG
#: "offentlig med hjemmel") and the restricted one ("public without legal basis").
ACCESS_BUNDLES: Final = ("legal-basis", "no-legal-basis")

_PREFIX: Final = {
    ("2", "legal-basis"): "/api/legal-basis",
    ("2", "no-legal-basis"): "/api/no-legal-basis",
    ("3", "legal-basis"): "/api/v3/full-access",
    ("3", "no-legal-basis"): "/api/v3/restricted-access",
}

#: The scope a bundle needs (v2 names from the contract's documentation; v3 renamed the bundles to
#: full-access / restricted-access).
SCOPES: Final = {
    ("2", "legal-basis"): "nhn:hgd-persontjenesten-api/read-with-legal-basis",
    ("2", "no-legal-basis"): "nhn:hgd-persontjenesten-api/read-no-legal-basis",
    ("3", "legal-basis"): "nhn:hgd-persontjenesten-api/full-access",
    ("3", "no-legal-basis"): "nhn:hgd-persontjenesten-api/restricted-access",
}

#: Operation → (method, path below the prefix).
OPERATIONS: Final = {
    "latest_event": ("GET", "/event/latest"),
    "events": ("GET", "/event"),
    "person_by_id": ("GET", "/person/{id}"),
    "person_by_nin": ("POST", "/person/get-by-nin"),
    "persons_by_id": ("POST", "/person/bulk-by-id"),
    "persons_by_nin": ("POST", "/person/bulk-by-nin"),
    "search_persons": ("POST", "/search/person"),
}

EVENT_PAGE_MAX: Final = 1000  # events per event?sequenceNumber=N answer
BULK_MAX: Final = 100  # ids or numbers per bulk request, persons per search answer


def path_prefix(api_version: str, bundle: str) -> str:
    """The route tree of a version and bundle, e.g. ``/api/legal-basis`` or ``/api/v3/full-access``."""
    try:
        return _PREFIX[(api_version, bundle)]
    except KeyError:
        raise ValueError(f"no route tree for api version {api_version!r} and bundle {bundle!r}") from None


def version_header(api_version: str) -> tuple[str, str]:
    """The version header as NHN's clients send it: ``api-version: 2`` (v2), ``Api-Version: 3`` (v3)."""
    return ("api-version", "2") if api_version == "2" else ("Api-Version", api_version)


def contract_path() -> Path:
    """The OpenAPI file shipped in the package."""
    return Path(str(resources.files("upstream") / "contract" / "persontjenesten-openapi-v2.yaml"))
