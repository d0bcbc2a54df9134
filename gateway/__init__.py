"""The HTTP gateway: the service API, the applicant portal and the public announcement pages."""
