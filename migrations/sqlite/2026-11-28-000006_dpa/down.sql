DROP TABLE subprocessor_decisions;
DROP TABLE dpa_document_bytes;
DROP TABLE dpa_documents;
DROP TABLE dpa_versions;
DROP TABLE dpas;
DROP TABLE vendors;
