"""What tests share: real documents, the webhook receiver, settings for the real servers,
and the environment of a worker started as a subprocess. One copy of each."""
