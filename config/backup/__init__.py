"""Backup and restore of the database and the media folder, taken consistently.

`manage.py backup DIR` writes one folder:

    manifest.json    what was backed up: when, the server's version, the audit chain's head,
                     the number of indexed DICOM files and of media files (written last:
                     a folder without it is an incomplete backup)
    database.dump    pg_dump's custom format, of one snapshot of the database
    index.sha256     the DICOM files the database indexes in that snapshot (sha256sum format)
    media/           a copy of MEDIA_ROOT (the DICOM store, AI outputs, models, exports)
    media.sha256     every file of media/ with its SHA-256 (check with `sha256sum -c`)

Files in the store are written before the rows that index them and never rewritten, so
dumping the database first and copying the media after gives a pair in which every indexed
file is present; the backup checks that it is (index.sha256 against media.sha256).

`manage.py restore DIR` refuses anything but a new, empty database and an empty media
folder, copies the media back checking every hash, restores the database, then verifies
the audit chain (and that its head is the one backed up) and every indexed DICOM file.
docs/security.md has the procedure.
"""
