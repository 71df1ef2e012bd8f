"""FHIR servers and FHIR out: the client and its transport, knowledge export, example patients."""
