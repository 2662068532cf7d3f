"""The command lines: `zoo` and its subcommands (zoo.commands.cli), the host settings they apply
(zoo.commands.host), and the results table (zoo.commands.reproduce). Nothing below this
package imports it."""
