from dockweb.cli.launch import entry

entry()
