// Every technique package of the workspace, imported for its registration line
// (`registerPeftMethod(...)`): `--adapter` folders are read, and `merge` works, for each technique
// listed here. A new technique package is added here and to package.json's dependencies.
import '@peft/lora';
