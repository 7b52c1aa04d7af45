/* diode-keygen: create a key pair for one side of the diode (PREFIX.key, PREFIX.pub). */
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "keys.h"

int
main(int argc, char **argv)
{
	char err[512];
	uint8_t pub[DD_KEY_BYTES];
	char fp[17], path[4200];

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: diode-keygen PREFIX\n"
				"  writes PREFIX.key (secret, mode 0600) and PREFIX.pub; never "
				"overwrites.\n"
				"  Give PREFIX.pub to the other side; keep PREFIX.key on this one.\n");
		return 2;
	}
	if (dd_crypto_init() != 0) {
		fprintf(stderr, "diode-keygen: libsodium failed to initialise\n");
		return 1;
	}
	if (dd_keys_generate(argv[1], err, sizeof(err)) != 0) {
		fprintf(stderr, "diode-keygen: %s\n", err);
		return 1;
	}
	snprintf(path, sizeof(path), "%s.pub", argv[1]);
	if (dd_keys_load_public(path, pub, err, sizeof(err)) == 0) {
		dd_keys_fingerprint(pub, fp);
		printf("wrote %s.key and %s.pub (fingerprint %s)\n", argv[1], argv[1], fp);
	}
	return 0;
}
