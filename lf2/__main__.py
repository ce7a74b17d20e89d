from lf2.cli import console_main

console_main()
