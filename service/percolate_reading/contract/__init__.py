"""What crosses process boundaries: subjects, tenants, and (by issue 12) topology, the job
message and object keys. Imported by every role; imports no role."""
