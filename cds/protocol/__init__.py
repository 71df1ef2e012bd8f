"""CDS Hooks and FHIR on the wire: request and response models, OperationOutcome, FHIR dates."""
