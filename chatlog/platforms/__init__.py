"""One module per chat platform: endpoint, signing, rendering and answer classification."""
