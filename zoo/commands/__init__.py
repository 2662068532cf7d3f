"""The command lines: `zoo` and its subcommands (zoo.commands.cli), the host settings they apply
(zoo.commands.host), the results table (zoo.commands.reproduce) and the README blocks it and the
benches write (zoo.commands.readme). Nothing below this package imports it."""
