"""Platform code below the workflows: settings, keys, codec, embedded servers, logs, database, connection."""
